//! The sidecars' durable target in a Kubernetes ConfigMap: no API server runs here, so a
//! local HTTP server plays the ConfigMap endpoints (GET, and a JSON merge PATCH that
//! checks `resourceVersion`); the controller must leave the ConfigMap naming green after a
//! cutover, retrying after a conflict.

mod flip_support;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use flip_support::{controller, text, Fleet};
use serde_json::{json, Value};

const CONFIG: &str = "# the sidecar's config\nlisten = \"127.0.0.1:6432\"\nactive = \"blue\"\ngeneration = 1\n\n[upstream]\nblue = \"postgres://b\"\ngreen = \"postgres://g\"\n";

/// What the fake API server holds and saw.
struct State {
    configmap: Value,
    /// PATCHes still to refuse with 409, as if another writer got there first.
    conflicts: usize,
    requests: Vec<String>,
}

fn serve(state: Arc<Mutex<State>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            reader.read_line(&mut request_line).expect("request line");
            let mut length = 0;
            let mut authorized = false;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("header");
                if line.trim().is_empty() {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(value) = lower.strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
                authorized |= line.trim() == "Authorization: Bearer kube-token";
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).expect("body");
            let mut state = state.lock().unwrap();
            state.requests.push(request_line.trim().to_string());
            let path = "/api/v1/namespaces/ledger/configmaps/pgflip-sidecar";
            let (status, answer) = match request_line.split_whitespace().collect::<Vec<_>>()[..] {
                _ if !authorized => (401, json!({"message": "Unauthorized"})),
                ["GET", p, _] if p == path => (200, state.configmap.clone()),
                ["PATCH", p, _] if p == path => {
                    let patch: Value = serde_json::from_slice(&body).expect("patch JSON");
                    let current = state.configmap["metadata"]["resourceVersion"].clone();
                    if state.conflicts > 0 {
                        state.conflicts -= 1;
                        let version = current.as_str().unwrap().parse::<u64>().unwrap() + 1;
                        state.configmap["metadata"]["resourceVersion"] = json!(version.to_string());
                        (409, json!({"message": "the object has been modified"}))
                    } else if patch["metadata"]["resourceVersion"] != current {
                        (409, json!({"message": "stale resourceVersion"}))
                    } else {
                        for (key, value) in patch["data"].as_object().unwrap() {
                            state.configmap["data"][key] = value.clone();
                        }
                        let version = current.as_str().unwrap().parse::<u64>().unwrap() + 1;
                        state.configmap["metadata"]["resourceVersion"] = json!(version.to_string());
                        (200, state.configmap.clone())
                    }
                }
                _ => (404, json!({"message": "not found"})),
            };
            let body = answer.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn a_cutover_leaves_the_configmap_naming_green() {
    let state = Arc::new(Mutex::new(State {
        configmap: json!({"metadata": {"name": "pgflip-sidecar", "resourceVersion": "41"}, "data": {"proxy.toml": CONFIG}}),
        conflicts: 1,
        requests: Vec::new(),
    }));
    let port = serve(state.clone());
    let fleet = Fleet::start(1);
    std::fs::write(fleet.dir.path().join("kube-token"), "kube-token\n").expect("token");
    let kubernetes = format!(
        "[kubernetes]\nconfigmap = \"ledger/pgflip-sidecar\"\napi = \"http://127.0.0.1:{port}\"\ntoken_file = \"kube-token\"\n"
    );
    let plan = fleet.plan(&[], &kubernetes);
    let output = controller(&plan, &["run"]);
    assert!(output.status.success(), "{}", text(&output));
    let state = state.lock().unwrap();
    let config = state.configmap["data"]["proxy.toml"].as_str().unwrap();
    assert!(config.contains("active = \"green\""), "{config}");
    assert!(!config.contains("generation = 1\n"), "the generation moved on: {config}");
    assert!(config.starts_with("# the sidecar's config\n"), "the rest is kept: {config}");
    assert!(config.contains("[upstream]\nblue = \"postgres://b\""), "{config}");
    let patches = state.requests.iter().filter(|r| r.starts_with("PATCH")).count();
    assert_eq!(patches, 2, "one conflict, then the patch: {:?}", state.requests);
}
