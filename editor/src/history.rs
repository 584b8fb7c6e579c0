//! Undo/redo as whole-document snapshots: every edit pushes the document as it was before.

use unilip_core::GraphDoc;

/// Most snapshots kept on the undo stack.
const MAX_UNDO: usize = 256;

/// Undo and redo stacks of [`GraphDoc`] snapshots.
#[derive(Default)]
pub struct History {
    undo: Vec<GraphDoc>,
    redo: Vec<GraphDoc>,
    /// Key of the last recorded edit; a following edit with the same key (typing into one field)
    /// merges into it instead of pushing another snapshot.
    last_key: Option<String>,
}

impl History {
    /// Records `before` as the state preceding a new edit, and clears the redo stack.
    pub fn record(&mut self, before: GraphDoc, key: Option<String>) {
        self.redo.clear();
        if key.is_some() && key == self.last_key {
            return;
        }
        self.last_key = key;
        self.undo.push(before);
        if self.undo.len() > MAX_UNDO {
            self.undo.remove(0);
        }
    }

    /// Steps back: returns the previous document, stashing `current` for redo.
    pub fn undo(&mut self, current: &GraphDoc) -> Option<GraphDoc> {
        let prev = self.undo.pop()?;
        self.redo.push(current.clone());
        self.last_key = None;
        Some(prev)
    }

    /// Steps forward again after an undo.
    pub fn redo(&mut self, current: &GraphDoc) -> Option<GraphDoc> {
        let next = self.redo.pop()?;
        self.undo.push(current.clone());
        self.last_key = None;
        Some(next)
    }

    /// Ends merging of same-key edits (e.g. when a text field loses focus).
    pub fn break_merge(&mut self) {
        self.last_key = None;
    }

    /// Whether there is something to undo.
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Whether there is something to redo.
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }
}
