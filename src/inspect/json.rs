//! The hand-written JSON walk behind `ChatRequest::parse`: one pass over the body's bytes
//! that finds the four top-level members inspection reads and checks everything else,
//! without building anything.
//!
//! It accepts exactly what keyrelay accepted when serde_json did this walk (a `Probe` struct
//! with `&RawValue` fields and a depth-counting skip visitor for the other members, kept in
//! `reference.rs`), and words each rejection as serde_json did, place included. That means
//! following serde_json 1.x's rules to the letter, two sets of them:
//!
//! - members inspection reads (`model`, `stream`, `messages`, `stream_options`) are walked as
//!   serde_json walks a `RawValue` (`ignore_value`): no depth limit, numbers checked for
//!   syntax only, `\u` escapes need four hex digits but may be lone surrogates;
//! - every other member is walked as `deserialize_any` walks it: at most 128 levels counting
//!   the body's own object, numbers that do not fit an `f64` rejected, strings decoded so
//!   lone surrogates are rejected, and its own error codes for trailing commas.
//!
//! Strings are where the bytes are (prompts), so they are scanned 64 bytes at a time: a
//! bit mask marks the quotes, backslashes and control characters of a block and the scan
//! jumps from one to the next. The mask uses SSE2 through `safe_arch` on x86-64 (every
//! x86-64 CPU has it) and a portable word-at-a-time version elsewhere.
//!
//! The differential tests (`tests/prop_inspect.rs`, fuzz target `inspect`) compare this walk
//! with the serde_json one on arbitrary and mutated bodies, messages included.

use std::fmt;
use std::ops::Range;

/// serde_json's recursion limit: the body's own object takes one level.
const RECURSION_LIMIT: u32 = 128;

/// Where the members inspection reads are in the body: the byte range of each value.
#[derive(Debug, Default)]
pub(super) struct Members {
    pub model: Option<Range<usize>>,
    pub stream: Option<Range<usize>>,
    pub messages: Option<Range<usize>>,
    pub stream_options: Option<Range<usize>>,
}

/// A JSON error, shown as serde_json shows it: `<what> at line L column C`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SyntaxError {
    code: Code,
    /// Byte offset whose line and column the message names.
    at: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    EofWhileParsingList,
    EofWhileParsingObject,
    EofWhileParsingString,
    EofWhileParsingValue,
    ExpectedColon,
    ExpectedListCommaOrEnd,
    ExpectedObjectCommaOrEnd,
    ExpectedSomeIdent,
    ExpectedSomeValue,
    InvalidEscape,
    InvalidNumber,
    NumberOutOfRange,
    ControlCharacterWhileParsingString,
    KeyMustBeAString,
    LoneLeadingSurrogateInHexEscape,
    TrailingComma,
    TrailingCharacters,
    UnexpectedEndOfHexEscape,
    RecursionLimitExceeded,
    DuplicateField(&'static str),
}

impl Code {
    /// The end of the body inside an object or an array.
    fn eof_in(object: bool) -> Code {
        if object {
            Code::EofWhileParsingObject
        } else {
            Code::EofWhileParsingList
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        // serde_json's wording, word for word.
        f.write_str(match self {
            Code::EofWhileParsingList => "EOF while parsing a list",
            Code::EofWhileParsingObject => "EOF while parsing an object",
            Code::EofWhileParsingString => "EOF while parsing a string",
            Code::EofWhileParsingValue => "EOF while parsing a value",
            Code::ExpectedColon => "expected `:`",
            Code::ExpectedListCommaOrEnd => "expected `,` or `]`",
            Code::ExpectedObjectCommaOrEnd => "expected `,` or `}`",
            Code::ExpectedSomeIdent => "expected ident",
            Code::ExpectedSomeValue => "expected value",
            Code::InvalidEscape => "invalid escape",
            Code::InvalidNumber => "invalid number",
            Code::NumberOutOfRange => "number out of range",
            Code::ControlCharacterWhileParsingString => {
                "control character (\\u0000-\\u001F) found while parsing a string"
            }
            Code::KeyMustBeAString => "key must be a string",
            Code::LoneLeadingSurrogateInHexEscape => "lone leading surrogate in hex escape",
            Code::TrailingComma => "trailing comma",
            Code::TrailingCharacters => "trailing characters",
            Code::UnexpectedEndOfHexEscape => "unexpected end of hex escape",
            Code::RecursionLimitExceeded => "recursion limit exceeded",
            Code::DuplicateField(name) => return write!(f, "duplicate field `{name}`"),
        })
    }
}

impl SyntaxError {
    /// The message with serde_json's position: lines count `\n`, columns count bytes.
    pub fn message(&self, body: &[u8]) -> String {
        let before = &body[..self.at.min(body.len())];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let line = 1 + before[..line_start].iter().filter(|&&b| b == b'\n').count();
        format!(
            "{} at line {line} column {}",
            self.code,
            before.len() - line_start
        )
    }
}

type Result<T> = std::result::Result<T, SyntaxError>;

/// Walks `body` (valid UTF-8 whose first non-whitespace character is `{`) as one JSON object
/// and returns where its inspected members are.
pub(super) fn members(body: &[u8]) -> Result<Members> {
    let mut walk = Walk {
        b: body,
        i: 0,
        stack: BitStack::default(),
    };
    let members = walk.object()?;
    match walk.whitespace() {
        Some(_) => Err(walk.peek_error(Code::TrailingCharacters)),
        None => Ok(members),
    }
}

#[derive(Clone, Copy)]
enum Field {
    Model,
    Stream,
    Messages,
    StreamOptions,
    Other,
}

/// How a string is checked: as serde_json's `ignore_str` (raw values) or its `parse_str`
/// (decoded values and keys: lone surrogates rejected, the error placed one byte later).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Strings {
    Ignore,
    Decode,
}

struct Walk<'a> {
    b: &'a [u8],
    /// The next byte to read.
    i: usize,
    /// Open arrays (false) and objects (true) of the raw value being walked.
    stack: BitStack,
}

impl Walk<'_> {
    // --- reading, and errors placed as serde_json places them -----------------------------

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn peek_or_null(&self) -> u8 {
        self.peek().unwrap_or(0)
    }

    /// Reads one byte; at the end, reads nothing and returns `None`.
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    /// An error about a byte already read (serde_json's `error`).
    fn error(&self, code: Code) -> SyntaxError {
        SyntaxError { code, at: self.i }
    }

    /// An error about the byte peeked at (serde_json's `peek_error`).
    fn peek_error(&self, code: Code) -> SyntaxError {
        SyntaxError {
            code,
            at: (self.i + 1).min(self.b.len()),
        }
    }

    /// Skips JSON whitespace and peeks at the byte after it.
    fn whitespace(&mut self) -> Option<u8> {
        while let Some(c) = self.peek() {
            if !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(c);
            }
            self.i += 1;
        }
        None
    }

    // --- the body's object --------------------------------------------------------------

    /// The body's object, as serde_json's `deserialize_map` walked keyrelay's `Probe`.
    fn object(&mut self) -> Result<Members> {
        match self.whitespace() {
            Some(b'{') => self.i += 1,
            // The caller has checked that the body starts with `{` after Unicode whitespace,
            // so what is here is whitespace JSON does not allow (a form feed, a no-break
            // space...): serde_json says `expected value` for it.
            Some(_) => return Err(self.peek_error(Code::ExpectedSomeValue)),
            None => return Err(self.peek_error(Code::EofWhileParsingValue)),
        }
        let mut members = Members::default();
        let mut first = true;
        loop {
            if !self.next_key(&mut first)? {
                break;
            }
            let (slot, name) = match self.key_field()? {
                Field::Model => (&mut members.model, "model"),
                Field::Stream => (&mut members.stream, "stream"),
                Field::Messages => (&mut members.messages, "messages"),
                Field::StreamOptions => (&mut members.stream_options, "stream_options"),
                Field::Other => {
                    self.colon()?;
                    self.decoded_value()?;
                    continue;
                }
            };
            if slot.is_some() {
                // serde_json places this error where it stands after trying to close the
                // object: past any whitespace, and past a `}` if one follows.
                if self.whitespace() == Some(b'}') {
                    self.i += 1;
                }
                return Err(self.error(Code::DuplicateField(name)));
            }
            self.colon()?;
            self.whitespace();
            let start = self.i;
            self.raw_value()?;
            *slot = Some(start..self.i);
        }
        self.i += 1; // the `}` `next_key` stopped at
        Ok(members)
    }

    /// serde_json's `MapAccess::has_next_key`: whether a key follows (its `"` not yet read)
    /// or the object ends here (its `}` not yet read).
    fn next_key(&mut self, first: &mut bool) -> Result<bool> {
        let Some(c) = self.whitespace() else {
            return Err(self.peek_error(Code::EofWhileParsingObject));
        };
        if c == b'}' {
            Ok(false)
        } else if *first {
            *first = false;
            if c == b'"' {
                Ok(true)
            } else {
                Err(self.peek_error(Code::KeyMustBeAString))
            }
        } else if c == b',' {
            self.i += 1;
            match self.whitespace() {
                Some(b'"') => Ok(true),
                Some(b'}') => Err(self.peek_error(Code::TrailingComma)),
                Some(_) => Err(self.peek_error(Code::KeyMustBeAString)),
                None => Err(self.peek_error(Code::EofWhileParsingValue)),
            }
        } else {
            Err(self.peek_error(Code::ExpectedObjectCommaOrEnd))
        }
    }

    /// A top-level key, decoded as serde_json decodes it, and the member it names.
    fn key_field(&mut self) -> Result<Field> {
        self.i += 1;
        let start = self.i;
        let escaped = self.string(Strings::Decode)?;
        let raw = &self.b[start..self.i - 1];
        let decoded;
        let key: &[u8] = if escaped {
            // Checked above, so it decodes; an escaped key is rare enough for serde_json.
            decoded =
                serde_json::from_slice::<String>(&self.b[start - 1..self.i]).unwrap_or_default();
            decoded.as_bytes()
        } else {
            raw
        };
        Ok(match key {
            b"model" => Field::Model,
            b"stream" => Field::Stream,
            b"messages" => Field::Messages,
            b"stream_options" => Field::StreamOptions,
            _ => Field::Other,
        })
    }

    /// serde_json's `parse_object_colon`.
    fn colon(&mut self) -> Result<()> {
        match self.whitespace() {
            Some(b':') => {
                self.i += 1;
                Ok(())
            }
            Some(_) => Err(self.peek_error(Code::ExpectedColon)),
            None => Err(self.peek_error(Code::EofWhileParsingObject)),
        }
    }

    // --- values walked as serde_json's `ignore_value` (raw values) -----------------------

    /// One value, walked as serde_json walks a `RawValue`: any depth, no number range.
    fn raw_value(&mut self) -> Result<()> {
        self.stack.clear();
        // The container the value just read belongs to, when it was not pushed yet.
        let mut enclosing: Option<bool> = None;
        loop {
            let Some(c) = self.whitespace() else {
                return Err(self.peek_error(Code::EofWhileParsingValue));
            };
            let opened = match c {
                b'n' => self.ident(b"ull", 1)?,
                b't' => self.ident(b"rue", 1)?,
                b'f' => self.ident(b"alse", 1)?,
                b'-' => {
                    self.i += 1;
                    self.ignore_number()?;
                    None
                }
                b'0'..=b'9' => {
                    self.ignore_number()?;
                    None
                }
                b'"' => {
                    self.i += 1;
                    self.string(Strings::Ignore)?;
                    None
                }
                b'[' | b'{' => {
                    if let Some(object) = enclosing.take() {
                        self.stack.push(object);
                    }
                    self.i += 1;
                    Some(c == b'{')
                }
                _ => return Err(self.peek_error(Code::ExpectedSomeValue)),
            };
            let (mut accept_comma, mut object) = match opened {
                Some(object) => (false, object),
                None => match enclosing.take().or_else(|| self.stack.pop()) {
                    Some(object) => (true, object),
                    None => return Ok(()),
                },
            };
            loop {
                match self.whitespace() {
                    Some(b',') if accept_comma => {
                        self.i += 1;
                        break;
                    }
                    Some(b']') if !object => {}
                    Some(b'}') if object => {}
                    Some(_) if accept_comma => {
                        return Err(self.peek_error(if object {
                            Code::ExpectedObjectCommaOrEnd
                        } else {
                            Code::ExpectedListCommaOrEnd
                        }));
                    }
                    Some(_) => break,
                    None => {
                        return Err(self.peek_error(Code::eof_in(object)));
                    }
                }
                self.i += 1;
                match self.stack.pop() {
                    Some(o) => object = o,
                    None => return Ok(()),
                }
                accept_comma = true;
            }
            if object {
                match self.whitespace() {
                    Some(b'"') => self.i += 1,
                    Some(_) => return Err(self.peek_error(Code::KeyMustBeAString)),
                    None => return Err(self.peek_error(Code::EofWhileParsingObject)),
                }
                self.string(Strings::Ignore)?;
                match self.whitespace() {
                    Some(b':') => self.i += 1,
                    Some(_) => return Err(self.peek_error(Code::ExpectedColon)),
                    None => return Err(self.peek_error(Code::EofWhileParsingObject)),
                }
            }
            enclosing = Some(object);
        }
    }

    /// `null`, `true` or `false` after its first byte, as serde_json's `parse_ident`.
    /// Returns `None`: no container was opened.
    fn ident(&mut self, rest: &[u8], first: usize) -> Result<Option<bool>> {
        self.i += first;
        for &expected in rest {
            match self.next() {
                None => return Err(self.error(Code::EofWhileParsingValue)),
                Some(c) if c != expected => return Err(self.error(Code::ExpectedSomeIdent)),
                Some(_) => {}
            }
        }
        Ok(None)
    }

    /// serde_json's `ignore_integer` and what follows it: the syntax of a number, after
    /// its `-`.
    fn ignore_number(&mut self) -> Result<()> {
        match self.next().unwrap_or(0) {
            b'0' => {
                if self.peek_or_null().is_ascii_digit() {
                    return Err(self.peek_error(Code::InvalidNumber));
                }
            }
            b'1'..=b'9' => self.digits(),
            _ => return Err(self.error(Code::InvalidNumber)),
        }
        if self.peek_or_null() == b'.' {
            self.i += 1;
            let start = self.i;
            self.digits();
            if self.i == start {
                return Err(self.peek_error(Code::InvalidNumber));
            }
        }
        if matches!(self.peek_or_null(), b'e' | b'E') {
            self.i += 1;
            if matches!(self.peek_or_null(), b'+' | b'-') {
                self.i += 1;
            }
            if !self.next().unwrap_or(0).is_ascii_digit() {
                return Err(self.error(Code::InvalidNumber));
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek_or_null().is_ascii_digit() {
            self.i += 1;
        }
    }

    // --- values walked as serde_json's `deserialize_any` (other members) -----------------

    /// A member keyrelay does not read, walked as serde_json walks a value it deserializes
    /// without keeping it: every container counts towards the recursion limit, numbers
    /// must fit an `f64`, strings must decode.
    fn decoded_value(&mut self) -> Result<()> {
        // Open containers, innermost last: bit `n` is set when the container at depth
        // `n + 1` is an object. The body's object already took one level of the limit.
        let mut objects: u128 = 0;
        let mut depth: u32 = 0;
        'value: loop {
            let Some(c) = self.whitespace() else {
                return Err(self.peek_error(Code::EofWhileParsingValue));
            };
            match c {
                b'n' => _ = self.ident(b"ull", 1)?,
                b't' => _ = self.ident(b"rue", 1)?,
                b'f' => _ = self.ident(b"alse", 1)?,
                b'-' => {
                    self.i += 1;
                    self.number()?;
                }
                b'0'..=b'9' => self.number()?,
                b'"' => {
                    self.i += 1;
                    self.string(Strings::Decode)?;
                }
                b'[' | b'{' => {
                    if depth + 2 == RECURSION_LIMIT {
                        return Err(self.peek_error(Code::RecursionLimitExceeded));
                    }
                    self.i += 1;
                    let object = c == b'{';
                    objects = (objects & !(1 << depth)) | (u128::from(object) << depth);
                    depth += 1;
                    // The first element or key, as `has_next_element`/`has_next_key` see it.
                    let Some(c) = self.whitespace() else {
                        return Err(self.peek_error(Code::eof_in(object)));
                    };
                    match (object, c) {
                        (false, b']') | (true, b'}') => {
                            self.i += 1;
                            depth -= 1;
                        }
                        (false, _) => continue 'value,
                        (true, b'"') => {
                            self.decoded_key()?;
                            continue 'value;
                        }
                        (true, _) => return Err(self.peek_error(Code::KeyMustBeAString)),
                    }
                }
                _ => return Err(self.peek_error(Code::ExpectedSomeValue)),
            }
            // A value is complete: close what ends here, up to a container that goes on.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let object = objects & (1 << (depth - 1)) != 0;
                let Some(c) = self.whitespace() else {
                    return Err(self.peek_error(Code::eof_in(object)));
                };
                match (object, c) {
                    (false, b']') | (true, b'}') => {
                        self.i += 1;
                        depth -= 1;
                    }
                    (_, b',') => {
                        self.i += 1;
                        match (object, self.whitespace()) {
                            (false, Some(b']')) | (true, Some(b'}')) => {
                                return Err(self.peek_error(Code::TrailingComma));
                            }
                            (_, None) => return Err(self.peek_error(Code::EofWhileParsingValue)),
                            (false, Some(_)) => continue 'value,
                            (true, Some(b'"')) => {
                                self.decoded_key()?;
                                continue 'value;
                            }
                            (true, Some(_)) => {
                                return Err(self.peek_error(Code::KeyMustBeAString));
                            }
                        }
                    }
                    (false, _) => return Err(self.peek_error(Code::ExpectedListCommaOrEnd)),
                    (true, _) => return Err(self.peek_error(Code::ExpectedObjectCommaOrEnd)),
                }
            }
        }
    }

    /// A key of a decoded object (its `"` peeked at) and the colon after it.
    fn decoded_key(&mut self) -> Result<()> {
        self.i += 1;
        self.string(Strings::Decode)?;
        self.colon()
    }

    /// serde_json's `parse_integer` and what follows it, after the `-`: the syntax of a
    /// number and whether it fits an `f64` the way serde_json computes it (without its
    /// `float_roundtrip` feature, which keyrelay does not enable).
    fn number(&mut self) -> Result<()> {
        let Some(c) = self.next() else {
            return Err(self.error(Code::EofWhileParsingValue));
        };
        let mut significand = match c {
            b'0' => {
                if self.peek_or_null().is_ascii_digit() {
                    return Err(self.peek_error(Code::InvalidNumber));
                }
                0
            }
            b'1'..=b'9' => u64::from(c - b'0'),
            _ => return Err(self.error(Code::InvalidNumber)),
        };
        let mut exponent: i32 = 0;
        // Integer digits: beyond `u64`, serde_json keeps the significand and counts the
        // digits it drops as powers of ten.
        let mut overflowed = false;
        while let c @ b'0'..=b'9' = self.peek_or_null() {
            let digit = u64::from(c - b'0');
            if overflowed || overflows_u64(significand, digit) {
                overflowed = true;
                exponent += 1;
            } else {
                significand = significand * 10 + digit;
            }
            self.i += 1;
        }
        match self.peek_or_null() {
            b'.' => {
                self.i += 1;
                let mut fraction_digits = 0;
                let mut overflowed = false;
                while let c @ b'0'..=b'9' = self.peek_or_null() {
                    let digit = u64::from(c - b'0');
                    if !overflowed && overflows_u64(significand, digit) {
                        overflowed = true;
                    }
                    if !overflowed {
                        significand = significand * 10 + digit;
                        exponent -= 1;
                    }
                    fraction_digits += 1;
                    self.i += 1;
                }
                if fraction_digits == 0 {
                    return Err(self.peek_error(match self.peek() {
                        Some(_) => Code::InvalidNumber,
                        None => Code::EofWhileParsingValue,
                    }));
                }
                if matches!(self.peek_or_null(), b'e' | b'E') {
                    return self.exponent(significand, exponent);
                }
                self.f64_from_parts(significand, exponent)
            }
            b'e' | b'E' => self.exponent(significand, exponent),
            // An integer fits `u64`/`i64` or, longer, an `f64` when it has fewer than 309
            // digits; `f64_from_parts` decides.
            _ if overflowed => self.f64_from_parts(significand, exponent),
            _ => Ok(()),
        }
    }

    /// serde_json's `parse_exponent` (the `e` peeked at).
    fn exponent(&mut self, significand: u64, starting_exp: i32) -> Result<()> {
        self.i += 1;
        let positive_exp = match self.peek_or_null() {
            b'+' => {
                self.i += 1;
                true
            }
            b'-' => {
                self.i += 1;
                false
            }
            _ => true,
        };
        let Some(c) = self.next() else {
            return Err(self.error(Code::EofWhileParsingValue));
        };
        if !c.is_ascii_digit() {
            return Err(self.error(Code::InvalidNumber));
        }
        let mut exp = i32::from(c - b'0');
        while let c @ b'0'..=b'9' = self.peek_or_null() {
            self.i += 1;
            let digit = i32::from(c - b'0');
            if exp >= i32::MAX / 10 && (exp > i32::MAX / 10 || digit > i32::MAX % 10) {
                // `parse_exponent_overflow`: infinity is an error, zero is not.
                if significand != 0 && positive_exp {
                    return Err(self.error(Code::NumberOutOfRange));
                }
                self.digits();
                return Ok(());
            }
            exp = exp * 10 + digit;
        }
        let exponent = if positive_exp {
            starting_exp.saturating_add(exp)
        } else {
            starting_exp.saturating_sub(exp)
        };
        self.f64_from_parts(significand, exponent)
    }

    /// serde_json's `f64_from_parts`: the same arithmetic, so the same numbers overflow.
    fn f64_from_parts(&self, significand: u64, mut exponent: i32) -> Result<()> {
        let mut f = significand as f64;
        loop {
            match POW10.get(exponent.unsigned_abs() as usize) {
                Some(&pow) => {
                    if exponent >= 0 && (f * pow).is_infinite() {
                        return Err(self.error(Code::NumberOutOfRange));
                    }
                    return Ok(());
                }
                None => {
                    if f == 0.0 {
                        return Ok(());
                    }
                    if exponent >= 0 {
                        return Err(self.error(Code::NumberOutOfRange));
                    }
                    f /= 1e308;
                    exponent += 308;
                }
            }
        }
    }

    // --- strings ------------------------------------------------------------------------

    /// The rest of a string whose opening `"` has been read, up to and past its closing
    /// `"`. Returns whether it holds an escape.
    fn string(&mut self, how: Strings) -> Result<bool> {
        let b = self.b;
        let mut escaped = false;
        // `mask` marks the quotes, backslashes and control characters of the block that
        // starts at `base`; bits below the scan position are cleared.
        let mut pos = self.i;
        let mut base = pos;
        let mut mask = 0u64;
        loop {
            while mask == 0 {
                if pos >= b.len() {
                    self.i = b.len();
                    return Err(self.error(Code::EofWhileParsingString));
                }
                base = pos;
                mask = block::specials(b, pos);
                pos += 64;
            }
            let k = mask.trailing_zeros() as usize;
            let at = base + k;
            let c = b[at];
            if c == b'\\' {
                escaped = true;
                // `\n`, `\"`... inline; `\u` and mistakes go the long way.
                let len = match b.get(at + 1) {
                    Some(&e) if SIMPLE_ESCAPE[usize::from(e)] => 2,
                    _ => {
                        self.i = at + 1;
                        self.escape(how)?;
                        self.i - at
                    }
                };
                let skip = k + len;
                if skip >= 64 {
                    pos = at + len;
                    mask = 0;
                    continue;
                }
                mask &= u64::MAX << skip;
            } else if c == b'"' {
                self.i = at + 1;
                return Ok(escaped);
            } else {
                // `parse_str` reports past the control character, `ignore_str` at it.
                self.i = at + usize::from(how == Strings::Decode);
                return Err(self.error(Code::ControlCharacterWhileParsingString));
            }
        }
    }

    /// An escape after its `\`, as serde_json's `ignore_escape` or `parse_escape`.
    fn escape(&mut self, how: Strings) -> Result<()> {
        let Some(c) = self.next() else {
            return Err(self.error(Code::EofWhileParsingString));
        };
        match c {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(()),
            b'u' if how == Strings::Ignore => self.hex_escape().map(drop),
            b'u' => self.unicode_escape(),
            _ => Err(self.error(Code::InvalidEscape)),
        }
    }

    /// Four hex digits, as serde_json's `decode_hex_escape`.
    fn hex_escape(&mut self) -> Result<u16> {
        let Some(digits) = self.b.get(self.i..self.i + 4) else {
            self.i = self.b.len();
            return Err(self.error(Code::EofWhileParsingString));
        };
        self.i += 4;
        let mut n = 0u16;
        for &d in digits {
            let Some(v) = (d as char).to_digit(16) else {
                return Err(self.error(Code::InvalidEscape));
            };
            n = n << 4 | v as u16;
        }
        Ok(n)
    }

    /// serde_json's `parse_unicode_escape` for a string it decodes: surrogates must pair.
    fn unicode_escape(&mut self) -> Result<()> {
        let n = self.hex_escape()?;
        match n {
            0xDC00..=0xDFFF => Err(self.error(Code::LoneLeadingSurrogateInHexEscape)),
            0xD800..=0xDBFF => {
                for expected in [b'\\', b'u'] {
                    match self.next() {
                        None => return Err(self.error(Code::EofWhileParsingString)),
                        Some(c) if c != expected => {
                            return Err(self.error(Code::UnexpectedEndOfHexEscape));
                        }
                        Some(_) => {}
                    }
                }
                match self.hex_escape()? {
                    0xDC00..=0xDFFF => Ok(()),
                    _ => Err(self.error(Code::LoneLeadingSurrogateInHexEscape)),
                }
            }
            _ => Ok(()),
        }
    }
}

/// The escapes that stand for one character: `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`.
static SIMPLE_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut n = 0;
    while n < 8 {
        table[b"\"\\/bfnrt"[n] as usize] = true;
        n += 1;
    }
    table
};

/// Whether `significand * 10 + digit` overflows `u64` (serde_json's `overflow!`).
fn overflows_u64(significand: u64, digit: u64) -> bool {
    significand >= u64::MAX / 10 && (significand > u64::MAX / 10 || digit > u64::MAX % 10)
}

/// A stack of booleans, 64 to a word: the containers of a raw value, which may nest as deep
/// as the body is long. The first 64 live inline, so ordinary bodies never allocate.
#[derive(Default)]
struct BitStack {
    first: u64,
    more: Vec<u64>,
    len: usize,
}

impl BitStack {
    fn clear(&mut self) {
        self.more.clear();
        self.len = 0;
    }

    fn push(&mut self, bit: bool) {
        let (word, shift) = (self.len / 64, self.len % 64);
        let slot = match word {
            0 => &mut self.first,
            _ => {
                if word > self.more.len() {
                    self.more.push(0);
                }
                &mut self.more[word - 1]
            }
        };
        *slot = (*slot & !(1 << shift)) | (u64::from(bit) << shift);
        self.len += 1;
    }

    fn pop(&mut self) -> Option<bool> {
        self.len = self.len.checked_sub(1)?;
        let word = match self.len / 64 {
            0 => self.first,
            n => self.more[n - 1],
        };
        Some(word & (1 << (self.len % 64)) != 0)
    }
}

/// Finding the bytes that end a run of plain string content.
mod block {
    /// A mask of the bytes of `b[pos..pos + 64]` that are `"`, `\` or below 0x20 (bit `n`
    /// for byte `pos + n`). Bytes past the end of `b` are never marked.
    #[inline(always)]
    pub(super) fn specials(b: &[u8], pos: usize) -> u64 {
        match b.get(pos..pos + 64) {
            Some(block) => specials64(block.try_into().unwrap_or(&[b' '; 64])),
            None => {
                let mut block = [b' '; 64];
                let tail = &b[pos.min(b.len())..];
                block[..tail.len()].copy_from_slice(tail);
                specials64(&block)
            }
        }
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[inline(always)]
    pub(super) fn specials64(block: &[u8; 64]) -> u64 {
        use safe_arch::{
            cmp_eq_mask_i8_m128i, load_unaligned_m128i, min_u8_m128i, move_mask_i8_m128i,
            set_splat_i8_m128i,
        };
        let mut mask = 0u64;
        for (n, chunk) in block.chunks_exact(16).enumerate() {
            let v = load_unaligned_m128i(chunk.try_into().unwrap_or(&[b' '; 16]));
            // `"` is 0x22: flipping bit 1 maps it to 0x20 and keeps 0x00..=0x1F below
            // 0x20, so one unsigned `<= 0x20` finds quotes and control characters.
            let x = v ^ set_splat_i8_m128i(0x02);
            let quote_or_control =
                cmp_eq_mask_i8_m128i(min_u8_m128i(x, set_splat_i8_m128i(0x20)), x);
            let backslash = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'\\' as i8));
            let bits = move_mask_i8_m128i(quote_or_control | backslash) as u32 as u64;
            mask |= bits << (16 * n);
        }
        mask
    }

    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    #[inline(always)]
    pub(super) fn specials64(block: &[u8; 64]) -> u64 {
        portable(block)
    }

    /// The same mask eight bytes at a time in `u64` arithmetic, for other targets (and
    /// compared with the SSE2 one in the tests).
    #[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
    pub(super) fn portable(block: &[u8; 64]) -> u64 {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = ONES << 7;
        let mut mask = 0u64;
        for (n, word) in block.chunks_exact(8).enumerate() {
            let x = u64::from_le_bytes(word.try_into().unwrap_or([b' '; 8]));
            // Exact per-byte tests (no borrow crosses a byte): high bit set where true.
            let y = x ^ (ONES * 0x02);
            let quote_or_control = !(((y | HIGH) - ONES * 0x21) | y) & HIGH;
            let z = x ^ (ONES * u64::from(b'\\'));
            let backslash = !(((z & !HIGH) + !HIGH) | z) & HIGH;
            // One bit per byte, gathered into the low byte by a multiply.
            let flags = (quote_or_control | backslash) >> 7;
            let bits = flags.wrapping_mul(0x0102_0408_1020_4080) >> 56;
            mask |= bits << (8 * n);
        }
        mask
    }
}

/// serde_json's powers of ten for `f64_from_parts`, `1e0..=1e308`.
static POW10: [f64; 309] = [
    1e000, 1e001, 1e002, 1e003, 1e004, 1e005, 1e006, 1e007, 1e008, 1e009, //
    1e010, 1e011, 1e012, 1e013, 1e014, 1e015, 1e016, 1e017, 1e018, 1e019, //
    1e020, 1e021, 1e022, 1e023, 1e024, 1e025, 1e026, 1e027, 1e028, 1e029, //
    1e030, 1e031, 1e032, 1e033, 1e034, 1e035, 1e036, 1e037, 1e038, 1e039, //
    1e040, 1e041, 1e042, 1e043, 1e044, 1e045, 1e046, 1e047, 1e048, 1e049, //
    1e050, 1e051, 1e052, 1e053, 1e054, 1e055, 1e056, 1e057, 1e058, 1e059, //
    1e060, 1e061, 1e062, 1e063, 1e064, 1e065, 1e066, 1e067, 1e068, 1e069, //
    1e070, 1e071, 1e072, 1e073, 1e074, 1e075, 1e076, 1e077, 1e078, 1e079, //
    1e080, 1e081, 1e082, 1e083, 1e084, 1e085, 1e086, 1e087, 1e088, 1e089, //
    1e090, 1e091, 1e092, 1e093, 1e094, 1e095, 1e096, 1e097, 1e098, 1e099, //
    1e100, 1e101, 1e102, 1e103, 1e104, 1e105, 1e106, 1e107, 1e108, 1e109, //
    1e110, 1e111, 1e112, 1e113, 1e114, 1e115, 1e116, 1e117, 1e118, 1e119, //
    1e120, 1e121, 1e122, 1e123, 1e124, 1e125, 1e126, 1e127, 1e128, 1e129, //
    1e130, 1e131, 1e132, 1e133, 1e134, 1e135, 1e136, 1e137, 1e138, 1e139, //
    1e140, 1e141, 1e142, 1e143, 1e144, 1e145, 1e146, 1e147, 1e148, 1e149, //
    1e150, 1e151, 1e152, 1e153, 1e154, 1e155, 1e156, 1e157, 1e158, 1e159, //
    1e160, 1e161, 1e162, 1e163, 1e164, 1e165, 1e166, 1e167, 1e168, 1e169, //
    1e170, 1e171, 1e172, 1e173, 1e174, 1e175, 1e176, 1e177, 1e178, 1e179, //
    1e180, 1e181, 1e182, 1e183, 1e184, 1e185, 1e186, 1e187, 1e188, 1e189, //
    1e190, 1e191, 1e192, 1e193, 1e194, 1e195, 1e196, 1e197, 1e198, 1e199, //
    1e200, 1e201, 1e202, 1e203, 1e204, 1e205, 1e206, 1e207, 1e208, 1e209, //
    1e210, 1e211, 1e212, 1e213, 1e214, 1e215, 1e216, 1e217, 1e218, 1e219, //
    1e220, 1e221, 1e222, 1e223, 1e224, 1e225, 1e226, 1e227, 1e228, 1e229, //
    1e230, 1e231, 1e232, 1e233, 1e234, 1e235, 1e236, 1e237, 1e238, 1e239, //
    1e240, 1e241, 1e242, 1e243, 1e244, 1e245, 1e246, 1e247, 1e248, 1e249, //
    1e250, 1e251, 1e252, 1e253, 1e254, 1e255, 1e256, 1e257, 1e258, 1e259, //
    1e260, 1e261, 1e262, 1e263, 1e264, 1e265, 1e266, 1e267, 1e268, 1e269, //
    1e270, 1e271, 1e272, 1e273, 1e274, 1e275, 1e276, 1e277, 1e278, 1e279, //
    1e280, 1e281, 1e282, 1e283, 1e284, 1e285, 1e286, 1e287, 1e288, 1e289, //
    1e290, 1e291, 1e292, 1e293, 1e294, 1e295, 1e296, 1e297, 1e298, 1e299, //
    1e300, 1e301, 1e302, 1e303, 1e304, 1e305, 1e306, 1e307, 1e308,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The mask by definition, one byte at a time.
    fn scalar(block: &[u8; 64]) -> u64 {
        block
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c == b'"' || c == b'\\' || c < 0x20)
            .fold(0, |m, (n, _)| m | 1 << n)
    }

    #[test]
    fn block_masks_mark_quotes_backslashes_and_control_characters_only() {
        // Every byte value at every position, among neighbours that are and are not marked.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for value in 0..=255u8 {
            for at in 0..64 {
                let mut block = [0u8; 64];
                for byte in block.iter_mut() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    *byte = [
                        b'a', b' ', b'"', b'\\', 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0x80, 0xff, 0x00,
                    ][(seed % 12) as usize];
                }
                block[at] = value;
                let expected = scalar(&block);
                assert_eq!(block::portable(&block), expected, "{value:#x} at {at}");
                assert_eq!(block::specials64(&block), expected, "{value:#x} at {at}");
            }
        }
    }

    #[test]
    fn block_masks_stop_at_the_end_of_the_body() {
        let body = b"ab\"\\\x01";
        for pos in 0..=body.len() {
            let expected = (0..body.len() - pos)
                .filter(|&n| matches!(body[pos + n], b'"' | b'\\' | 0x01))
                .fold(0u64, |m, n| m | 1 << n);
            assert_eq!(block::specials(body, pos), expected, "from {pos}");
        }
    }

    #[test]
    fn positions_count_lines_and_bytes_as_serde_json_does() {
        let e = SyntaxError {
            code: Code::ExpectedSomeValue,
            at: 9,
        };
        // Columns count bytes: the `é` is two.
        let body = "{\n\"\u{e9}\":\n x".as_bytes();
        assert_eq!(e.message(body), "expected value at line 3 column 1");
        let e = SyntaxError {
            code: Code::ExpectedSomeValue,
            at: 5,
        };
        assert_eq!(e.message(body), "expected value at line 2 column 3");
        let e = SyntaxError {
            code: Code::DuplicateField("model"),
            at: 3,
        };
        assert_eq!(
            e.message(b"abc"),
            "duplicate field `model` at line 1 column 3"
        );
    }

    #[test]
    fn bit_stack_keeps_order_across_words() {
        let mut stack = BitStack::default();
        let bits: Vec<bool> = (0..300).map(|n| n % 3 == 0 || n % 7 == 0).collect();
        for round in 0..2 {
            // Pushed past two word boundaries, popped back below one, pushed again.
            for &bit in &bits {
                stack.push(bit);
            }
            for &bit in bits[100..].iter().rev() {
                assert_eq!(stack.pop(), Some(bit), "round {round}");
            }
            for &bit in &bits[100..] {
                stack.push(!bit);
            }
            for &bit in bits[100..].iter().rev() {
                assert_eq!(stack.pop(), Some(!bit), "round {round}");
            }
            for &bit in bits[..100].iter().rev() {
                assert_eq!(stack.pop(), Some(bit), "round {round}");
            }
            assert_eq!(stack.pop(), None);
        }
    }
}
