//! Bytes gathered from several body frames: a lone frame is kept as it came, and only a
//! second one costs a copy (into one buffer, so the bytes can be written or parsed whole).
//! Shared by `coalesce` (frames joined into one write) and `usage_tap` (a JSON answer read
//! whole for its usage).

use bytes::{Bytes, BytesMut};

#[derive(Default)]
pub enum Gathered {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Gathered {
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Nothing pushed since the last `take` (an empty frame still counts as held).
    pub fn is_empty(&self) -> bool {
        matches!(self, Gathered::Empty)
    }

    pub fn push(&mut self, data: Bytes) {
        *self = match std::mem::take(self) {
            Gathered::Empty => Gathered::One(data),
            Gathered::One(first) => {
                let mut many = BytesMut::with_capacity((first.len() + data.len()).max(1024));
                many.extend_from_slice(&first);
                many.extend_from_slice(&data);
                Gathered::Many(many)
            }
            Gathered::Many(mut many) => {
                many.extend_from_slice(&data);
                Gathered::Many(many)
            }
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        match self {
            Gathered::Empty => &[],
            Gathered::One(b) => b,
            Gathered::Many(b) => b,
        }
    }

    /// The gathered bytes as one `Bytes`, leaving this empty; `None` when nothing was held.
    pub fn take(&mut self) -> Option<Bytes> {
        match std::mem::take(self) {
            Gathered::Empty => None,
            Gathered::One(b) => Some(b),
            Gathered::Many(b) => Some(b.freeze()),
        }
    }
}
