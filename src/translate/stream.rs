//! See `translate` module docs.
