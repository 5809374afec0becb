//! Finding one top-level member of a JSON object without parsing the rest.
//!
//! Every plain answer is read for its `usage`, which sits at the top level, usually last.
//! serde_json reading the whole answer to reach it (every key decoded, every value walked)
//! cost about fifteen instructions a byte, a tenth of keyrelay's own work per request.
//! This scan reads the body 64 bytes at a time, marking with a few word operations per
//! block which quotes are real and which brackets and commas lie outside strings (as
//! simdjson's first stage does), and jumps from mark to mark, counting brackets. It
//! checks nothing it does not need, so the value found is then read by serde_json, and
//! anything the scan is not certain about (a key written with escapes, a body that ends
//! early) is answered `Unsure`, for the caller to read the whole body the thorough way.

/// Where a member's value is.
#[derive(Debug, PartialEq, Eq)]
pub enum Member {
    /// The value starts at this byte offset.
    At(usize),
    /// The object has no such member, or has it twice (which serde_json rejects).
    Absent,
    /// The body is not a plain object this scan can vouch for.
    Unsure,
}

/// Finds top-level member `name` (plain ASCII, no escapes) of the object in `body`.
pub fn find(body: &[u8], name: &str) -> Member {
    let [member] = find_each(body, [name]);
    member
}

/// Finds each of the top-level members `names` in one pass; when the scan is unsure, every
/// answer is `Unsure`.
pub fn find_each<const N: usize>(body: &[u8], names: [&str; N]) -> [Member; N] {
    match scan_object(body, names) {
        Some(found) => found.map(|f| match f {
            Found::Once(at) => Member::At(at),
            Found::Never | Found::Twice(_) => Member::Absent,
        }),
        None => std::array::from_fn(|_| Member::Unsure),
    }
}

/// Like `find_each`, but a repeated member is found at its last occurrence, as a
/// deserializer that assigns fields as it meets them reads it.
pub fn find_each_last<const N: usize>(body: &[u8], names: [&str; N]) -> [Member; N] {
    match scan_object(body, names) {
        Some(found) => found.map(|f| match f {
            Found::Once(at) | Found::Twice(at) => Member::At(at),
            Found::Never => Member::Absent,
        }),
        None => std::array::from_fn(|_| Member::Unsure),
    }
}

/// A member's value: never seen, seen once, or seen more than once (the last at).
#[derive(Clone, Copy)]
enum Found {
    Never,
    Once(usize),
    Twice(usize),
}

fn scan_object<const N: usize>(body: &[u8], names: [&str; N]) -> Option<[Found; N]> {
    let mut scan = Scan::new(body);
    let mut found = [Found::Never; N];
    scan.whitespace();
    if scan.peek() != Some(b'{') {
        return None;
    }
    scan.at += 1;
    loop {
        scan.whitespace();
        match scan.peek() {
            Some(b'}') => return Some(found),
            Some(b'"') => {}
            _ => return None,
        }
        let key = scan.string()?;
        if key.contains(&b'\\') {
            return None;
        }
        scan.whitespace();
        if scan.peek() != Some(b':') {
            return None;
        }
        scan.at += 1;
        scan.whitespace();
        if let Some(i) = names.iter().position(|name| key == name.as_bytes()) {
            found[i] = match found[i] {
                Found::Never => Found::Once(scan.at),
                Found::Once(_) | Found::Twice(_) => Found::Twice(scan.at),
            };
        }
        if !scan.value() {
            return None;
        }
        scan.whitespace();
        match scan.peek() {
            Some(b',') => scan.at += 1,
            Some(b'}') => return Some(found),
            _ => return None,
        }
    }
}

struct Scan<'a> {
    body: &'a [u8],
    at: usize,
    blocks: Blocks<'a>,
}

impl<'a> Scan<'a> {
    fn new(body: &'a [u8]) -> Self {
        Scan {
            body,
            at: 0,
            blocks: Blocks::new(body),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.body.get(self.at).copied()
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    /// Skips the string starting at the current quote; returns its raw content.
    fn string(&mut self) -> Option<&'a [u8]> {
        let start = self.at + 1;
        let end = self.blocks.find(start, |b| b.quotes)?;
        self.at = end + 1;
        Some(&self.body[start..end])
    }

    /// Skips one value: a string, or anything up to the end of its brackets; false when
    /// the body ends first.
    fn value(&mut self) -> bool {
        match self.peek() {
            Some(b'"') => return self.string().is_some(),
            Some(b'{' | b'[') => {}
            // A scalar ends at the next mark; a string right after it (a missing comma) is
            // skipped as one, so that what follows is not taken for this object's member.
            _ => {
                let Some(at) = self.blocks.find(self.at, |b| b.structure | b.quotes) else {
                    self.at = self.body.len();
                    return false;
                };
                self.at = at;
                return self.body[at] != b'"' || self.string().is_some();
            }
        }
        let mut depth = 0usize;
        loop {
            let Some(at) = self.blocks.find(self.at, |b| b.structure) else {
                self.at = self.body.len();
                return false;
            };
            self.at = at;
            match self.body[at] {
                b'{' | b'[' => depth += 1,
                // The end of the object that holds this (scalar) value, or of a container.
                b'}' | b']' if depth == 0 => return true,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        return true;
                    }
                }
                // A comma.
                _ if depth == 0 => return true,
                _ => {}
            }
            self.at += 1;
        }
    }
}

/// The body read 64 bytes at a time from its start, as simdjson's first stage reads it:
/// which quotes are real (not escaped), and which brackets and commas are outside strings.
/// That takes a handful of word operations per block, where stepping from quote to quote
/// took a call and a dozen instructions for every string.
struct Blocks<'a> {
    body: &'a [u8],
    /// The block being read starts here.
    base: usize,
    block: Block,
    /// 1 when the next block's first byte is escaped by a backslash run ending this one.
    escaped_carry: u64,
    /// All ones when this block ends inside a string.
    in_string_carry: u64,
}

/// One block's marks (bit `n` for byte `base + n`).
#[derive(Clone, Copy)]
struct Block {
    /// Quotes that open or close a string.
    quotes: u64,
    /// `{`, `[`, `}`, `]` and `,` outside strings.
    structure: u64,
}

impl<'a> Blocks<'a> {
    fn new(body: &'a [u8]) -> Self {
        let mut blocks = Blocks {
            body,
            base: 0,
            block: Block {
                quotes: 0,
                structure: 0,
            },
            escaped_carry: 0,
            in_string_carry: 0,
        };
        blocks.read();
        blocks
    }

    /// The first position at or after `from` marked in the mask `pick` chooses, reading
    /// blocks up to it in order (each block's marks depend on all before it).
    #[inline]
    fn find(&mut self, mut from: usize, pick: impl Fn(&Block) -> u64) -> Option<usize> {
        debug_assert!(from >= self.base, "the scan only moves forward");
        loop {
            while from - self.base >= 64 {
                if self.base + 64 >= self.body.len() {
                    return None;
                }
                self.base += 64;
                self.read();
            }
            let ahead = pick(&self.block) & (u64::MAX << (from - self.base));
            if ahead != 0 {
                return Some(self.base + ahead.trailing_zeros() as usize);
            }
            from = self.base + 64;
        }
    }

    /// The marks of the block at `base`, from its bytes and the carries of the one before.
    // Out of line: once per 64 bytes, and the scan's loops stay small without it.
    #[inline(never)]
    fn read(&mut self) {
        let raw = match self.body.get(self.base..self.base + 64) {
            Some(bytes) => masks(bytes.try_into().unwrap_or(&[b' '; 64])),
            None => {
                // The last block, padded with spaces, which mark nothing.
                let mut padded = [b' '; 64];
                let tail = self.body.get(self.base..).unwrap_or_default();
                padded[..tail.len()].copy_from_slice(tail);
                masks(&padded)
            }
        };
        let escaped = escaped(raw.backslashes, &mut self.escaped_carry);
        let quotes = raw.quotes & !escaped;
        let in_string = prefix_xor(quotes) ^ self.in_string_carry;
        // Copy the last bit to all 64: the sign of the word.
        self.in_string_carry = ((in_string as i64) >> 63) as u64;
        self.block = Block {
            quotes,
            structure: raw.structure & !in_string,
        };
    }
}

/// The bytes of a block that are quotes, backslashes, and brackets or commas.
struct RawMasks {
    quotes: u64,
    backslashes: u64,
    structure: u64,
}

/// `RawMasks`, 16 bytes per step with SSE2 (every x86-64 CPU has it; `safe_arch` keeps this
/// crate free of `unsafe`).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn masks(block: &[u8; 64]) -> RawMasks {
    use safe_arch::{
        cmp_eq_mask_i8_m128i, load_unaligned_m128i, move_mask_i8_m128i, set_splat_i8_m128i,
    };
    let is = |v, byte: u8| cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(byte as i8));
    let bits = |m| u64::from(move_mask_i8_m128i(m) as u16);
    let mut raw = RawMasks {
        quotes: 0,
        backslashes: 0,
        structure: 0,
    };
    for (n, lane) in block.chunks_exact(16).enumerate() {
        let v = load_unaligned_m128i(lane.try_into().unwrap_or(&[b' '; 16]));
        // `[` and `]` are `{` and `}` with bit 5 clear: setting it finds both in two tests.
        let folded = v | set_splat_i8_m128i(0x20);
        let structure = is(folded, b'{') | is(folded, b'}') | is(v, b',');
        raw.quotes |= bits(is(v, b'"')) << (16 * n);
        raw.backslashes |= bits(is(v, b'\\')) << (16 * n);
        raw.structure |= bits(structure) << (16 * n);
    }
    raw
}

/// The same masks a byte at a time, for other targets.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn masks(block: &[u8; 64]) -> RawMasks {
    let mut raw = RawMasks {
        quotes: 0,
        backslashes: 0,
        structure: 0,
    };
    for (n, &b) in block.iter().enumerate() {
        raw.quotes |= u64::from(b == b'"') << n;
        raw.backslashes |= u64::from(b == b'\\') << n;
        raw.structure |= u64::from(matches!(b, b'{' | b'[' | b'}' | b']' | b',')) << n;
    }
    raw
}

/// The bytes escaped by a backslash: those after a run of backslashes of odd length
/// (escaped backslashes included), for a whole block at once. `carry` says whether the
/// block's first byte is escaped by the one before, and is set for the next block.
/// simdjson's branch-free method: a subtraction tells runs that start on even bytes from
/// runs that start on odd ones, and a run's parity then follows from where it ends.
fn escaped(backslashes: u64, carry: &mut u64) -> u64 {
    const ODD_BITS: u64 = 0xAAAA_AAAA_AAAA_AAAA;
    // A backslash that is itself escaped starts nothing.
    let potential = backslashes & !*carry;
    let maybe_escaped = potential << 1;
    let codes = ((maybe_escaped | ODD_BITS).wrapping_sub(potential)) ^ ODD_BITS;
    let escaped = codes ^ (backslashes | *carry);
    let escapes = codes & backslashes;
    *carry = escapes >> 63;
    escaped
}

/// Bit `n` of the result is the parity of bits `0..=n` of `x`: set from an opening quote
/// up to, not including, its closing one.
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// What serde_json makes of the member, for comparison.
    fn by_serde(body: &str, name: &str) -> Option<Value> {
        let Ok(Value::Object(members)) = serde_json::from_str::<Value>(body) else {
            return None;
        };
        members.get(name).cloned()
    }

    fn by_scan(body: &str, name: &str) -> Option<Value> {
        match find(body.as_bytes(), name) {
            Member::At(at) => {
                let mut de = serde_json::Deserializer::from_str(&body[at..]);
                Some(serde::Deserialize::deserialize(&mut de).unwrap())
            }
            Member::Absent => None,
            Member::Unsure => panic!("unsure about {body}"),
        }
    }

    #[test]
    fn finds_the_member_past_strings_and_nesting() {
        let body = r#" { "id" : "x\"}{,usage", "choices": [{"message": {"content": "\"usage\": 1 }]"}}],
            "n": -1.5e3, "t": true, "usage": {"prompt_tokens": 9, "d": [1, {"a": null}]}, "z": null } "#;
        assert_eq!(
            by_scan(body, "usage"),
            Some(serde_json::json!({"prompt_tokens": 9, "d": [1, {"a": null}]}))
        );
        assert_eq!(by_scan(body, "t"), Some(Value::Bool(true)));
        assert_eq!(by_scan(body, "z"), Some(Value::Null));
        assert_eq!(by_scan(body, "n"), Some(serde_json::json!(-1.5e3)));
        assert_eq!(find(body.as_bytes(), "missing"), Member::Absent);
        assert_eq!(find(br#"{}"#, "usage"), Member::Absent);
    }

    #[test]
    fn nested_and_repeated_members_are_not_taken() {
        assert_eq!(
            find(
                br#"{"a": {"usage": 1}, "b": ["usage", {"usage": 2}]}"#,
                "usage"
            ),
            Member::Absent
        );
        assert_eq!(
            find(br#"{"usage": 1, "usage": 2}"#, "usage"),
            Member::Absent
        );
    }

    #[test]
    fn several_members_in_one_pass() {
        let body = br#"{"choices": [], "id": "x", "usage": {"a": 1}}"#;
        assert_eq!(
            find_each(body, ["usage", "choices", "nope"]),
            [Member::At(36), Member::At(12), Member::Absent]
        );
        assert_eq!(
            find_each(br#"{"a": "#, ["a", "b"]),
            [Member::Unsure, Member::Unsure]
        );
    }

    #[test]
    fn the_last_of_repeated_members_when_asked() {
        let body = br#"{"a": 1, "b": 2, "a": 3}"#;
        assert_eq!(
            find_each_last(body, ["a", "b"]),
            [Member::At(22), Member::At(14)]
        );
        assert_eq!(
            find_each(body, ["a", "b"]),
            [Member::Absent, Member::At(14)]
        );
    }

    #[test]
    fn what_the_scan_cannot_vouch_for_is_unsure() {
        for body in [
            r#"{"us\u0061ge": 1}"#,
            r#"{"usage": {"a": 1"#,
            r#"{"usage": "open"#,
            r#"["usage", 1]"#,
            r#"{"a" 1}"#,
            r#"{"a": 1 "usage": 2}"#,
            "",
        ] {
            assert_eq!(find(body.as_bytes(), "usage"), Member::Unsure, "{body}");
        }
    }

    fn object_text(members: Vec<(String, Value)>, pretty: bool) -> String {
        let object = Value::Object(members.into_iter().collect());
        if pretty {
            serde_json::to_string_pretty(&object).unwrap()
        } else {
            object.to_string()
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let key = prop_oneof![Just("usage".to_owned()), "[a-z\"{}\\[\\]:,]{0,5}"];
        crate::json_strategy::json_value(key, "[a-z\"\\\\{}\\[\\],: ]{0,40}")
    }

    /// Which bytes a backslash escapes, one byte at a time: the definition.
    fn escaped_by_definition(bytes: &[u8]) -> Vec<bool> {
        let mut escaping = false;
        bytes
            .iter()
            .map(|&b| {
                let escaped = escaping;
                escaping = !escaping && b == b'\\';
                escaped
            })
            .collect()
    }

    #[test]
    fn escapes_across_blocks() {
        // A run of 63 backslashes ends the first block: the second block starts escaped.
        let mut body = vec![b'a'];
        body.extend([b'\\'; 63]);
        body.extend(br#""x\\"y"#);
        let mut carry = 0;
        let mut seen = Vec::new();
        for block in body.chunks(64) {
            let mut padded = [b' '; 64];
            padded[..block.len()].copy_from_slice(block);
            let raw = masks(&padded);
            let mask = escaped(raw.backslashes, &mut carry);
            seen.extend((0..block.len()).map(|n| mask >> n & 1 == 1));
        }
        assert_eq!(seen, escaped_by_definition(&body));
        assert!(seen[64], "the quote after 63 backslashes is escaped");
    }

    proptest! {
        /// The block-wise escapes, carried across blocks, are the definition's.
        #[test]
        fn escaped_bytes_are_those_after_odd_backslash_runs(
            bytes in prop::collection::vec(prop_oneof![
                4 => Just(b'\\'), 1 => Just(b'"'), 1 => Just(b'a'),
            ], 0..300),
        ) {
            let mut carry = 0;
            let mut seen = Vec::new();
            for block in bytes.chunks(64) {
                let mut padded = [b' '; 64];
                padded[..block.len()].copy_from_slice(block);
                let mask = escaped(masks(&padded).backslashes, &mut carry);
                seen.extend((0..block.len()).map(|n| mask >> n & 1 == 1));
            }
            prop_assert_eq!(seen, escaped_by_definition(&bytes));
        }

        /// Long strings full of the bytes the scan marks (escaped quotes and backslash
        /// runs as in tool-call arguments), the whole body shifted by up to a block, so that
        /// every mark falls at every place in a block and strings cross blocks.
        #[test]
        fn long_members_across_blocks_give_what_serde_json_gives(
            members in prop::collection::vec(
                ("[a-z]{0,3}|usage", prop_oneof![
                    "[a-z\"\\\\{}\\[\\],: ]{0,150}".prop_map(Value::String),
                    json_value(),
                ]),
                0..8,
            ),
            shift in 0..64usize,
            pretty in any::<bool>(),
        ) {
            let body = format!("{}{}", " ".repeat(shift), object_text(members, pretty));
            prop_assert_eq!(by_scan(&body, "usage"), by_serde(&body, "usage"));
            // Cut short, the object never closes: the scan must say it is unsure.
            for cut in [body.len() / 3, body.len() / 2, body.len() - 1] {
                prop_assert_eq!(find(&body.as_bytes()[..cut], "usage"), Member::Unsure);
            }
        }

        #[test]
        fn any_object_gives_what_serde_json_gives(
            members in prop::collection::vec(("[a-z]{0,3}|usage", json_value()), 0..6),
            pretty in any::<bool>(),
        ) {
            let body = object_text(members, pretty);
            prop_assert_eq!(by_scan(&body, "usage"), by_serde(&body, "usage"));
        }
    }
}
