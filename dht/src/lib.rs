//! Mainline DHT (BEP 5). Being written.
