//! Names as a run holds them: a path relative to a side's root is a `String`, and a name that
//! is not UTF-8 (bytes a file system allows: `caf\xe9.txt` from an old Latin-1 tool) is held
//! losslessly in it: each byte that is not part of valid UTF-8 becomes a character of the last
//! 256 code points of Unicode's plane 16 (private use), U+10FF00 + the byte. A name that holds
//! such characters itself has them held the same way (each of their bytes escaped), so the
//! mapping is one to one and [`at`] gives back the exact bytes. Every path a run touches on
//! disk goes through [`at`]; every name it reads, through [`held`].
//!
//! For people (the CLI's text and JSON), [`shown`] writes each such byte as `\xNN`.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The first code point that holds a byte.
const BASE: u32 = 0x10_FF00;

fn holds_bytes(c: char) -> bool {
    (BASE..=BASE + 0xFF).contains(&u32::from(c))
}

fn byte_char(b: u8) -> char {
    char::from_u32(BASE + u32::from(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// [`held`] of a name read from disk, reusing its storage: no copy for a UTF-8 name with
/// nothing to hold (the scan reads a million of them).
pub fn held_owned(name: OsString) -> String {
    match name.into_string() {
        // Only a 4-byte sequence of plane 16 (lead byte 0xF4) can be a held byte's character.
        Ok(s) if !s.as_bytes().contains(&0xF4) || !s.chars().any(holds_bytes) => s,
        Ok(s) => held(OsStr::new(&s)).into_owned(),
        Err(os) => held(&os).into_owned(),
    }
}

/// A name (or a relative path) from disk, as a run holds it.
pub fn held(name: &OsStr) -> Cow<'_, str> {
    let bytes = name.as_bytes();
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.chars().any(holds_bytes) {
            return Cow::Borrowed(s);
        }
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if holds_bytes(c) {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push(byte_char(b));
                }
            } else {
                out.push(c);
            }
        }
        out.extend(chunk.invalid().iter().map(|&b| byte_char(b)));
    }
    Cow::Owned(out)
}

/// The bytes of a name (or a relative path) a run holds.
pub fn bytes(rel: &str) -> Cow<'_, OsStr> {
    if !rel.chars().any(holds_bytes) {
        return Cow::Borrowed(OsStr::new(rel));
    }
    let mut out = Vec::with_capacity(rel.len());
    for c in rel.chars() {
        if holds_bytes(c) {
            out.push((u32::from(c) - BASE) as u8);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Cow::Owned(OsString::from_vec(out))
}

/// The path of `rel` under `root`, with its exact bytes.
pub fn at(root: &Path, rel: &str) -> PathBuf {
    root.join(bytes(rel))
}

/// `rel` for people: each byte that is not UTF-8 as `\xNN`.
pub fn shown(rel: &str) -> Cow<'_, str> {
    if !rel.chars().any(holds_bytes) {
        return Cow::Borrowed(rel);
    }
    let mut out = String::with_capacity(rel.len() + 8);
    for c in rel.chars() {
        if holds_bytes(c) {
            out.push_str(&format!("\\x{:02x}", u32::from(c) - BASE));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether `rel` holds bytes that are not UTF-8 (or characters held like them).
pub fn has_bytes(rel: &str) -> bool {
    rel.chars().any(holds_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(b: &[u8]) {
        let name = OsStr::from_bytes(b);
        let h = held(name);
        assert_eq!(bytes(&h).as_bytes(), b, "{h:?}");
    }

    #[test]
    fn every_name_round_trips() {
        round(b"plain.txt");
        round(b"caf\xe9.txt");
        round(b"\xff\xfe\x80");
        round("caf\u{e9} \u{1f600}".as_bytes());
        // A name holding the very characters bytes are held as: escaped too, one to one.
        round("\u{10ff41}x".as_bytes());
        round(b"a\xf4\x8f\xbd\x81b"); // U+10FF41 in UTF-8, then valid around it
        round(b"\xf4\x8f\xbd"); // a truncated one
                                // 1,000 random byte strings.
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1_000 {
            let n = rng.usize(1..24);
            let b: Vec<u8> = (0..n)
                .map(|_| rng.u8(1..=255))
                .filter(|&c| c != b'/')
                .collect();
            round(&b);
        }
    }

    #[test]
    fn plain_names_cost_nothing_and_bytes_show_as_escapes() {
        assert!(matches!(held(OsStr::new("a/b")), Cow::Borrowed(_)));
        assert!(matches!(bytes("a/b"), Cow::Borrowed(_)));
        let h = held(OsStr::from_bytes(b"caf\xe9.txt"));
        assert!(has_bytes(&h));
        assert_eq!(shown(&h), "caf\\xe9.txt");
        assert_eq!(
            at(Path::new("/r"), &h).as_os_str().as_bytes(),
            b"/r/caf\xe9.txt"
        );
    }
}
