//! Tracker.
