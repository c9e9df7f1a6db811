//! A minimal DER reader and writer for the parts of PKCS#7 SCEP needs and the `openssl` crate does not expose
//! (signed attributes, CSR attributes, degenerate certs-only SignedData).
//!
//! Guarantees: the reader never reads past its input, accepts only definite lengths of at most 4 length
//! octets, and refuses nesting deeper than [`MAX_DEPTH`] when asked to descend; the writer emits DER (minimal
//! lengths, SET OF elements sorted by their encoding).

use std::fmt;

/// Deepest nesting `Reader::enter` allows (each call is one level).
pub const MAX_DEPTH: usize = 32;

pub const TAG_INTEGER: u8 = 0x02;
pub const TAG_OCTET_STRING: u8 = 0x04;
pub const TAG_NULL: u8 = 0x05;
pub const TAG_OID: u8 = 0x06;
pub const TAG_UTF8_STRING: u8 = 0x0c;
pub const TAG_PRINTABLE_STRING: u8 = 0x13;
pub const TAG_IA5_STRING: u8 = 0x16;
pub const TAG_UTC_TIME: u8 = 0x17;
pub const TAG_SEQUENCE: u8 = 0x30;
pub const TAG_SET: u8 = 0x31;
pub const TAG_CONTEXT_0: u8 = 0xa0;
pub const TAG_CONTEXT_0_PRIMITIVE: u8 = 0x80;
pub const TAG_CONTEXT_1: u8 = 0xa1;

/// Why DER input was refused. Names the structural problem, never the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerError(pub &'static str);

impl fmt::Display for DerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// One tag-length-value element: its tag, its content octets and its whole encoding.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

/// Reads consecutive elements from a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    input: &'a [u8],
    depth: usize,
}

impl<'a> Reader<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Reader { input, depth: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// The next element, whatever its tag.
    pub fn any(&mut self) -> Result<Tlv<'a>, DerError> {
        let input = self.input;
        let (&tag, rest) = input.split_first().ok_or(DerError("truncated: no tag"))?;
        if tag & 0x1f == 0x1f {
            return Err(DerError("multi-byte tags are not supported"));
        }
        let (&first, rest) = rest.split_first().ok_or(DerError("truncated: no length"))?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 {
                return Err(DerError("indefinite lengths are not DER"));
            }
            if n > 4 {
                return Err(DerError("length field too long"));
            }
            if rest.len() < n {
                return Err(DerError("truncated: length"));
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(DerError("truncated: content shorter than its length"));
        }
        let header = input.len() - rest.len();
        let raw = &input[..header + len];
        self.input = &rest[len..];
        Ok(Tlv {
            tag,
            content: &rest[..len],
            raw,
        })
    }

    /// The next element, which must carry `tag`.
    pub fn expect(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, DerError> {
        let tlv = self.any()?;
        if tlv.tag != tag {
            return Err(DerError(what));
        }
        Ok(tlv)
    }

    /// The next element if it carries `tag`; otherwise nothing is consumed.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        match self.input.first() {
            Some(&t) if t == tag => self.any().map(Some),
            _ => Ok(None),
        }
    }

    /// A reader over the content of the next element (which must carry `tag`), one level deeper.
    pub fn enter(&mut self, tag: u8, what: &'static str) -> Result<Reader<'a>, DerError> {
        if self.depth >= MAX_DEPTH {
            return Err(DerError("nested too deeply"));
        }
        let tlv = self.expect(tag, what)?;
        Ok(Reader {
            input: tlv.content,
            depth: self.depth + 1,
        })
    }

    /// A reader over `tlv`'s content, one level deeper.
    pub fn inside(&self, tlv: &Tlv<'a>) -> Result<Reader<'a>, DerError> {
        if self.depth >= MAX_DEPTH {
            return Err(DerError("nested too deeply"));
        }
        Ok(Reader {
            input: tlv.content,
            depth: self.depth + 1,
        })
    }
}

/// Encodes one element.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A constructed element holding `parts` in order.
pub fn seq(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// A DER SET OF: elements sorted by their encodings.
pub fn set_of(mut elements: Vec<Vec<u8>>) -> Vec<u8> {
    elements.sort();
    tlv(TAG_SET, &elements.concat())
}

/// An unsigned big-endian magnitude as a DER INTEGER (adds a 0x00 if the top bit is set).
pub fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = {
        let skip = magnitude
            .iter()
            .take_while(|&&b| b == 0)
            .count()
            .min(magnitude.len().saturating_sub(1));
        &magnitude[skip..]
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(TAG_INTEGER, &content)
}

pub fn small_integer(value: u8) -> Vec<u8> {
    unsigned_integer(&[value])
}

/// An OBJECT IDENTIFIER from its dotted arcs.
pub fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    if let [a, b, rest @ ..] = arcs {
        push_base128(&mut content, a * 40 + b);
        for &arc in rest {
            push_base128(&mut content, arc);
        }
    }
    tlv(TAG_OID, &content)
}

fn push_base128(out: &mut Vec<u8>, mut value: u64) {
    let mut groups = vec![(value & 0x7f) as u8];
    value >>= 7;
    while value > 0 {
        groups.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    groups.reverse();
    out.extend_from_slice(&groups);
}

/// AlgorithmIdentifier with NULL parameters.
pub fn algorithm(arcs: &[u64]) -> Vec<u8> {
    seq(TAG_SEQUENCE, &[&oid(arcs), &tlv(TAG_NULL, &[])])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let encoded = tlv(TAG_OCTET_STRING, &vec![7u8; len]);
            let mut r = Reader::new(&encoded);
            let t = r.expect(TAG_OCTET_STRING, "octets").unwrap();
            assert_eq!(t.content.len(), len);
            assert_eq!(t.raw, &encoded[..]);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn truncated_indefinite_and_oversized_lengths_are_refused() {
        let encoded = tlv(TAG_SEQUENCE, &[1, 2, 3, 4]);
        for cut in 0..encoded.len() {
            assert!(Reader::new(&encoded[..cut]).any().is_err(), "cut at {cut}");
        }
        assert_eq!(
            Reader::new(&[0x30, 0x80, 0, 0]).any().unwrap_err(),
            DerError("indefinite lengths are not DER")
        );
        assert!(Reader::new(&[0x30, 0x85, 1, 1, 1, 1, 1]).any().is_err());
        assert!(
            Reader::new(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff])
                .any()
                .is_err()
        );
        assert!(Reader::new(&[0x1f, 0x01, 0x00]).any().is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let mut encoded = tlv(TAG_NULL, &[]);
        for _ in 0..(MAX_DEPTH + 2) {
            encoded = tlv(TAG_SEQUENCE, &encoded);
        }
        let mut r = Reader::new(&encoded);
        let mut levels = 0;
        let err = loop {
            match r.enter(TAG_SEQUENCE, "sequence") {
                Ok(inner) => {
                    r = inner;
                    levels += 1;
                }
                Err(e) => break e,
            }
        };
        assert_eq!(levels, MAX_DEPTH);
        assert_eq!(err, DerError("nested too deeply"));
    }

    #[test]
    fn integers_and_oids_encode_as_der() {
        assert_eq!(unsigned_integer(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(
            unsigned_integer(&[0x00, 0x00, 0x05]),
            vec![0x02, 0x01, 0x05]
        );
        assert_eq!(unsigned_integer(&[]), vec![0x02, 0x01, 0x00]);
        // sha256 = 2.16.840.1.101.3.4.2.1
        assert_eq!(
            oid(&[2, 16, 840, 1, 101, 3, 4, 2, 1]),
            vec![
                0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01
            ]
        );
    }

    #[test]
    fn set_of_sorts_its_elements() {
        let set = set_of(vec![vec![0x05, 0x00], vec![0x02, 0x01, 0x01]]);
        assert_eq!(set, vec![0x31, 0x05, 0x02, 0x01, 0x01, 0x05, 0x00]);
    }
}
