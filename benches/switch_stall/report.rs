//! What the switch-stall bench prints: the machine, one line per switch, and the latency
//! distributions of queries caught by a switch and of queries far from any.

use crate::load::{ClientError, ClientLog, SELECT};
use crate::switches::SwitchCall;
use crate::{Settings, BASELINE_MARGIN, CLIENTS, TARGET_P99};
use std::fmt;
use std::time::Duration;

/// Percentiles of a set of durations (nearest rank).
pub struct Distribution {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Distribution {
    pub fn of(mut values: Vec<Duration>) -> Option<Distribution> {
        values.sort_unstable();
        let rank = |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        let max = *values.last()?;
        Some(Distribution { count: values.len(), p50: rank(0.50), p99: rank(0.99), max })
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p50 {:>8} ms   p99 {:>8} ms   max {:>8} ms", ms(self.p50), ms(self.p99), ms(self.max))
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// What the clients saw during one switch.
#[derive(Default)]
pub struct SwitchStall {
    /// Queries overlapping the pause window: sent before the switch answered and
    /// answered after the pause began.
    pub caught: usize,
    /// For each client with such a query, the longest one: the stall that client saw.
    pub per_client: Vec<Duration>,
    /// The slowest caught query: when it started and ended, relative to the pause's start
    /// (negative: before it), in milliseconds.
    pub slowest: Option<(Duration, f64, f64)>,
}

/// Queries sorted by their relation to the switches.
pub struct Analysis {
    /// One entry per switch.
    pub stalls: Vec<SwitchStall>,
    /// Latencies of queries at least [`BASELINE_MARGIN`] away from every switch call,
    /// once the load has settled.
    pub baseline: Vec<Duration>,
    /// Latencies of queries that ran wholly while a switch opened its connections to the
    /// target, before its pause (the pre-warm's cost to clients).
    pub prewarm: Vec<Duration>,
    pub queries: usize,
    pub errors: usize,
}

/// Sorts the queries; the baseline only takes queries started from `baseline_from` on.
pub fn analyse(logs: &[ClientLog], calls: &[SwitchCall], baseline_from: Duration) -> Analysis {
    let mut stalls: Vec<SwitchStall> = calls.iter().map(|_| SwitchStall::default()).collect();
    let mut baseline = Vec::new();
    let mut prewarm = Vec::new();
    for log in logs {
        let mut longest: Vec<Option<Duration>> = vec![None; calls.len()];
        for query in &log.queries {
            let mut near_a_switch = query.started < baseline_from;
            for ((call, stall), longest) in calls.iter().zip(&mut stalls).zip(&mut longest) {
                if query.started >= call.sent && query.finished() <= call.pause_began() {
                    prewarm.push(query.latency);
                }
                if query.started < call.answered && query.finished() > call.pause_began() {
                    stall.caught += 1;
                    if stall.slowest.is_none_or(|(latency, _, _)| query.latency > latency) {
                        let relative = |at: Duration| (at.as_secs_f64() - call.pause_began().as_secs_f64()) * 1e3;
                        stall.slowest = Some((query.latency, relative(query.started), relative(query.finished())));
                    }
                    *longest = (*longest).max(Some(query.latency));
                }
                if query.started < call.answered + BASELINE_MARGIN && query.finished() + BASELINE_MARGIN > call.sent {
                    near_a_switch = true;
                }
            }
            if !near_a_switch {
                baseline.push(query.latency);
            }
        }
        for (stall, longest) in stalls.iter_mut().zip(longest) {
            stall.per_client.extend(longest);
        }
    }
    let queries = logs.iter().map(|log| log.queries.len()).sum();
    let errors = logs.iter().map(|log| log.errors.len()).sum();
    Analysis { stalls, baseline, prewarm, queries, errors }
}

/// Prints CPU count and model, memory, kernel, PostgreSQL and pgflip versions, the workload.
pub fn print_machine(settings: &Settings) {
    let pgflip = env!("CARGO_BIN_EXE_pgflip");
    println!("== pgflip switch stall: {CLIENTS} sessions through pgflip while it switches blue <-> green ==");
    crate::common::print_machine();
    println!("pgflip:     {} ({pgflip})", crate::common::version(pgflip.as_ref()));
    println!(
        "workload:   {CLIENTS} tokio-postgres sessions, each a closed loop (no think time) of the \
         prepared `{SELECT}` with random ids; {} switches, one every {} ms, green first",
        settings.switches,
        settings.interval.as_millis()
    );
}

/// Prints pgflip's command line, read back from /proc.
pub fn print_command_line(pid: u32) {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok().map(|raw| {
        raw.split(|&b| b == 0).filter(|arg| !arg.is_empty()).map(String::from_utf8_lossy).collect::<Vec<_>>().join(" ")
    });
    println!("pgflip command line: {}", cmdline.as_deref().unwrap_or("(not running)"));
}

/// Prints one line per switch: the call, the proxy's answer, and the queries it caught.
pub fn print_switches(calls: &[SwitchCall], analysis: &Analysis) {
    println!(
        "\nswitches (caught: queries overlapping the pause window, which ends at the answer and \
         starts held_ms before it; stall: each client's longest such query)"
    );
    println!(
        "{:>3} {:<6} {:>6} {:>8} {:>8} {:>8} {:>15} {:>6} {:>6} {:>7} {:>6} {:>12} {:>12}  {:<}",
        "#",
        "to",
        "status",
        "sent s",
        "call ms",
        "held ms",
        "warm/drain/move",
        "moved",
        "failed",
        "unmoved",
        "caught",
        "stall p50 ms",
        "stall max ms",
        "slowest: from .. to (ms from the pause start)"
    );
    for (index, (call, stall)) in calls.iter().zip(&analysis.stalls).enumerate() {
        let answer = call.outcome.as_ref().ok();
        let field = |value: Option<String>| value.unwrap_or_else(|| "-".into());
        let caught = stall.caught;
        let slowest = stall.slowest.map(|(_, from, to)| format!("{from:.1} .. {to:.1}"));
        let stall = Distribution::of(stall.per_client.clone());
        println!(
            "{:>3} {:<6} {:>6} {:>8.3} {:>8} {:>8} {:>15} {:>6} {:>6} {:>7} {:>6} {:>12} {:>12}  {:<}",
            index + 1,
            call.to,
            call.status,
            call.sent.as_secs_f64(),
            ms(call.duration()),
            field(answer.and_then(|a| a.held_ms).map(|held| held.to_string())),
            field(answer.map(|a| {
                let t = &a.timings;
                let part = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
                format!("{}/{}/{}", part(t.prewarm_ms), part(t.drain_ms), t.move_ms)
            })),
            field(answer.map(|a| a.moved.to_string())),
            field(answer.map(|a| a.failed.to_string())),
            field(answer.map(|a| a.unmoved.to_string())),
            caught,
            field(stall.as_ref().map(|s| ms(s.p50))),
            field(stall.as_ref().map(|s| ms(s.max))),
            field(slowest),
        );
        if let Some(problem) = call.problem() {
            println!("    FAILED: {problem}");
        }
    }
}

/// Prints the client errors, equal ones together: how many, which clients, when.
pub fn print_errors(logs: &[ClientLog]) {
    let mut groups: Vec<(&str, Vec<&ClientError>)> = Vec::new();
    for error in logs.iter().flat_map(|log| &log.errors) {
        match groups.iter_mut().find(|(what, _)| *what == error.what) {
            Some((_, members)) => members.push(error),
            None => groups.push((&error.what, vec![error])),
        }
    }
    if groups.is_empty() {
        return;
    }
    println!("\nclient errors ({}):", groups.iter().map(|(_, members)| members.len()).sum::<usize>());
    for (what, members) in &groups {
        let clients: Vec<String> = members.iter().map(|e| e.client.to_string()).collect();
        let sent: Vec<Duration> = members.iter().filter_map(|e| e.sent).collect();
        let waited: Vec<Duration> = members.iter().filter_map(|e| e.waited).collect();
        let span = |values: &[Duration], scale: f64, unit: &str| match (values.iter().min(), values.iter().max()) {
            (Some(low), Some(high)) => {
                format!("{:.3}-{:.3} {unit}", low.as_secs_f64() * scale, high.as_secs_f64() * scale)
            }
            _ => "-".into(),
        };
        println!("  {} x {what}", members.len());
        println!(
            "      clients {}; queries sent at {}, failed after {}",
            clients.join(","),
            span(&sent, 1.0, "s"),
            span(&waited, 1e3, "ms")
        );
    }
}

/// Prints the distributions and the verdict on the target; true when the target was met.
pub fn print_summary(calls: &[SwitchCall], analysis: &Analysis, load_secs: f64) -> bool {
    let answers: Vec<_> = calls.iter().filter_map(|call| call.outcome.as_ref().ok()).collect();
    let stall = Distribution::of(analysis.stalls.iter().flat_map(|s| s.per_client.iter().copied()).collect());
    let baseline = Distribution::of(analysis.baseline.clone());
    let durations = Distribution::of(calls.iter().map(SwitchCall::duration).collect());
    let held = Distribution::of(answers.iter().filter_map(|a| a.held_ms).map(Duration::from_millis).collect());
    let line = |what: &str, d: &Option<Distribution>| match d {
        Some(d) => println!("{what:<34} {d}   (n = {})", d.count),
        None => println!("{what:<34} no samples"),
    };
    println!("\nresults over {} switches", calls.len());
    line("per-client stall (client x switch)", &stall);
    line(&format!("baseline (>= {} ms from a switch)", BASELINE_MARGIN.as_millis()), &baseline);
    line("during pre-warm (before the pause)", &Distribution::of(analysis.prewarm.clone()));
    line("switch call duration", &durations);
    line("held_ms", &held);
    let moved: Vec<usize> = answers.iter().map(|a| a.moved).collect();
    match (moved.iter().min(), moved.iter().max()) {
        (Some(min), Some(max)) => {
            println!("{:<34} min {min}, max {max} (of {CLIENTS} sessions)", "sessions moved per switch")
        }
        _ => println!("{:<34} no successful switch", "sessions moved per switch"),
    }
    println!(
        "{:<34} {} in {load_secs:.1} s ({:.0} per second)",
        "total queries",
        analysis.queries,
        analysis.queries as f64 / load_secs
    );
    println!("{:<34} {}", "total errors", analysis.errors);
    let met = stall.as_ref().is_some_and(|s| s.p99 <= TARGET_P99);
    println!(
        "\ntarget: p99 stall at most {} ms when no long transaction is open: {} (p99 = {} ms)",
        TARGET_P99.as_millis(),
        if met { "met" } else { "NOT MET" },
        stall.as_ref().map_or("-".into(), |s| ms(s.p99))
    );
    met
}
