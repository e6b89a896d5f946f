//! Sharing baselines: every server connection reads its settings when it opens, and the
//! connections of one database and role nearly always read the same ones. Equal baselines
//! are kept once, so an idle session does not carry a copy of every setting.

use std::sync::{Arc, Mutex, Weak};

use crate::proxy::capture::Baseline;

/// Distinct baselines remembered at most; past it a new one is kept by its session alone.
const MAX_KNOWN: usize = 64;

/// The baselines sessions hold now, by content.
#[derive(Debug, Default)]
pub struct Baselines {
    known: Mutex<Vec<Weak<Baseline>>>,
}

impl Baselines {
    /// The shared baseline equal to `baseline`, or `baseline` itself, now shared.
    pub fn share(&self, baseline: Baseline) -> Arc<Baseline> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.retain(|held| held.strong_count() > 0);
        if let Some(same) = known.iter().filter_map(Weak::upgrade).find(|held| **held == baseline) {
            return same;
        }
        let shared = Arc::new(baseline);
        if known.len() < MAX_KNOWN {
            known.push(Arc::downgrade(&shared));
        }
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baseline(json: &str) -> Baseline {
        Baseline::parse(Some(json)).expect("a baseline")
    }

    #[test]
    fn equal_baselines_are_kept_once_while_held() {
        let baselines = Baselines::default();
        let first = baselines.share(baseline(r#"[["search_path","public"],["work_mem","4MB"]]"#));
        let second = baselines.share(baseline(r#"[["search_path","public"],["work_mem","4MB"]]"#));
        assert!(Arc::ptr_eq(&first, &second));
        let other = baselines.share(baseline(r#"[["search_path","app"],["work_mem","4MB"]]"#));
        assert!(!Arc::ptr_eq(&first, &other));
        drop((first, second));
        let third = baselines.share(baseline(r#"[["search_path","public"],["work_mem","4MB"]]"#));
        assert_eq!(Arc::strong_count(&third), 1, "a baseline nobody holds is forgotten");
        assert_eq!(baselines.known.lock().unwrap().len(), 2);
    }
}
