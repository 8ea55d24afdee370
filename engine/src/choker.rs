//! Upload slots of one torrent: at most `slots` interested peers unchoked at once, the rest wait in
//! arrival order (BEP 3 choking, in its simplest fair form; the rate-based rechoke is later work).

use std::collections::VecDeque;

/// Decides which peers of one torrent are unchoked. Peers are named by the reactor's connection key.
#[derive(Debug)]
pub(crate) struct Choker {
    slots: usize,
    unchoked: Vec<usize>,
    waiting: VecDeque<usize>,
}

impl Choker {
    /// A choker with `slots` upload slots (at least one).
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            slots: slots.max(1),
            unchoked: Vec::new(),
            waiting: VecDeque::new(),
        }
    }

    /// Peer `key` became interested: returns true when it gets a slot now (unchoke it); otherwise
    /// it waits for one.
    pub(crate) fn interested(&mut self, key: usize) -> bool {
        if self.unchoked.contains(&key) || self.waiting.contains(&key) {
            return false;
        }
        if self.unchoked.len() < self.slots {
            self.unchoked.push(key);
            true
        } else {
            self.waiting.push_back(key);
            false
        }
    }

    /// Peer `key` lost interest or left: returns the waiting peer that takes its slot, if any
    /// (unchoke it).
    pub(crate) fn leave(&mut self, key: usize) -> Option<usize> {
        self.waiting.retain(|&k| k != key);
        let before = self.unchoked.len();
        self.unchoked.retain(|&k| k != key);
        if self.unchoked.len() == before {
            return None;
        }
        let next = self.waiting.pop_front()?;
        self.unchoked.push(next);
        Some(next)
    }

    /// Whether `key` holds a slot.
    #[cfg(test)]
    pub(crate) fn is_unchoked(&self, key: usize) -> bool {
        self.unchoked.contains(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_passed_on_in_order() {
        let mut c = Choker::new(2);
        assert!(c.interested(1));
        assert!(c.interested(2));
        assert!(!c.interested(3));
        assert!(!c.interested(4));
        assert!(!c.interested(1), "already unchoked");
        assert_eq!(c.leave(4), None, "a waiting peer frees no slot");
        assert_eq!(c.leave(1), Some(3));
        assert!(c.is_unchoked(3) && !c.is_unchoked(1));
        assert_eq!(c.leave(2), None);
        assert!(c.interested(5));
    }
}
