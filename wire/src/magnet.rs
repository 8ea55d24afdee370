//! Magnet URIs (BEP 9). Filled in by the wire work.
