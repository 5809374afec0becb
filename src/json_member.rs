//! Finding one top-level member of a JSON object without parsing the rest.
//!
//! Every plain answer is read for its `usage`, which sits at the top level, usually last.
//! serde_json reading the whole answer to reach it (every key decoded, every value walked)
//! cost about fifteen instructions a byte, a tenth of keyrelay's own work per request.
//! This scan jumps through strings with `memchr` and only counts brackets elsewhere. It
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
    let mut scan = Scan { body, at: 0 };
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

/// The bytes `Scan::value` stops at; it steps over all others (digits, letters, spaces,
/// colons) with one table lookup each.
static STOPS: [bool; 256] = {
    let mut stops = [false; 256];
    stops[b'"' as usize] = true;
    stops[b'{' as usize] = true;
    stops[b'[' as usize] = true;
    stops[b'}' as usize] = true;
    stops[b']' as usize] = true;
    stops[b',' as usize] = true;
    stops
};

struct Scan<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
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
        let mut at = start;
        loop {
            at += memchr::memchr2(b'"', b'\\', self.body.get(at..)?)?;
            if self.body[at] == b'"' {
                self.at = at + 1;
                return Some(&self.body[start..at]);
            }
            // A backslash and the character it escapes.
            at += 2;
        }
    }

    /// Skips one value: a string, or anything up to the end of its brackets; false when
    /// the body ends first.
    fn value(&mut self) -> bool {
        let mut depth = 0usize;
        loop {
            while self
                .body
                .get(self.at)
                .is_some_and(|&b| !STOPS[usize::from(b)])
            {
                self.at += 1;
            }
            let Some(b) = self.peek() else {
                return false;
            };
            match b {
                b'"' => {
                    if self.string().is_none() {
                        return false;
                    }
                    if depth == 0 {
                        return true;
                    }
                    continue;
                }
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
                _ if depth == 0 => return true,
                _ => {}
            }
            self.at += 1;
        }
    }
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

    fn json_value() -> impl Strategy<Value = Value> {
        let key = prop_oneof![Just("usage".to_owned()), "[a-z\"{}\\[\\]:,]{0,5}"];
        crate::json_strategy::json_value(key, "[a-z\"\\\\{}\\[\\],: ]{0,40}")
    }

    proptest! {
        #[test]
        fn any_object_gives_what_serde_json_gives(
            members in prop::collection::vec(("[a-z]{0,3}|usage", json_value()), 0..6),
            pretty in any::<bool>(),
        ) {
            let object = Value::Object(members.into_iter().collect());
            let body = if pretty {
                serde_json::to_string_pretty(&object).unwrap()
            } else {
                object.to_string()
            };
            prop_assert_eq!(by_scan(&body, "usage"), by_serde(&body, "usage"));
        }
    }
}
