//! Recently opened or saved files, kept across sessions in a small text file (one path a line,
//! newest first) under the user's config folder, written atomically.

use std::path::{Path, PathBuf};

use unilip_core::atomic_write;

/// How many recent files are kept.
const RECENT_MAX: usize = 10;

/// The default store: `$XDG_CONFIG_HOME/unilip/recent.txt`, else `~/.config/unilip/recent.txt`;
/// `None` when neither variable is set.
pub fn default_store() -> Option<PathBuf> {
    let non_empty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let config =
        non_empty("XDG_CONFIG_HOME").or_else(|| non_empty("HOME").map(|h| h.join(".config")))?;
    Some(config.join("unilip").join("recent.txt"))
}

/// The recent-files list and the file it is persisted in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecentFiles {
    /// Paths, newest first.
    pub list: Vec<PathBuf>,
    /// Where the list is saved; `None` keeps it in memory only.
    store: Option<PathBuf>,
}

impl RecentFiles {
    /// Loads the list from `store` (a missing or unreadable file gives an empty list).
    pub fn load(store: Option<PathBuf>) -> Self {
        let list = store
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|text| {
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(PathBuf::from)
                    .take(RECENT_MAX)
                    .collect()
            })
            .unwrap_or_default();
        Self { list, store }
    }

    /// The file the list is saved in.
    pub fn store(&self) -> Option<&Path> {
        self.store.as_deref()
    }

    /// Moves `path` to the front of the list and saves the list. Returns the write error, if
    /// any (the in-memory list is updated regardless).
    pub fn remember(&mut self, path: &Path) -> Result<(), String> {
        let p = path.to_path_buf();
        self.list.retain(|r| *r != p);
        self.list.insert(0, p);
        self.list.truncate(RECENT_MAX);
        self.save()
    }

    fn save(&self) -> Result<(), String> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let mut text = String::new();
        for p in &self.list {
            // A path with a newline cannot be stored one per line; it stays in memory only.
            let s = p.to_string_lossy();
            if !s.contains('\n') {
                text.push_str(&s);
                text.push('\n');
            }
        }
        atomic_write(store, text.as_bytes())
            .map_err(|e| format!("cannot save recent files to {}: {e}", store.display()))
    }
}
