//! A seeded mutator for the stable runner: the mutations libFuzzer would try first, without its coverage
//! feedback, so the targets run on stable Rust in `cargo test`. Deterministic for a seed, so a failure replays.
//! Hand-written: the well-kept mutators (libFuzzer's, `arbitrary`) need nightly or a fuzzing engine.

/// Tokens worth splicing in: the plist and XML constructs the guards and the decoder treat specially, and DER
/// lengths and tags that stress a hand-written reader.
const TOKENS: &[&[u8]] = &[
    b"<dict>",
    b"</dict>",
    b"<array>",
    b"</array>",
    b"<key>",
    b"</key>",
    b"<string>",
    b"</string>",
    b"<data>",
    b"</data>",
    b"<integer>18446744073709551616</integer>",
    b"<integer>-1</integer>",
    b"<real>NaN</real>",
    b"<date>9999-99-99T99:99:99Z</date>",
    b"<true/>",
    b"<![CDATA[",
    b"]]>",
    b"<!DOCTYPE plist [<!ENTITY a \"aaaa\">]>",
    b"&a;",
    b"&#0;",
    b"&#x110000;",
    b"&amp;",
    b"bplist00",
    b"<key>MessageType</key><string>SetBootstrapToken</string>",
    b"<key>Status</key><string>Acknowledged</string>",
    b"\xff\xfe",
    b"\xc3\x28",
    b"\x00",
    b"\x30\x80",
    b"\x00\x00",
    b"\x30\x84\xff\xff\xff\xff",
    b"\x02\x81\x01",
    b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02",
    b"\xa0\x82\xff\xff",
    b"%0A",
    b"%2",
    b"-----BEGIN CERTIFICATE-----",
    b"-----END CERTIFICATE-----",
    b"==",
];

/// Mutations of a set of seed inputs, drawn from a xorshift64* stream.
pub struct Mutator {
    state: u64,
}

impl Mutator {
    pub fn new(seed: u64) -> Self {
        Mutator {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// `seeds[i]` for a random `i`, changed by one to four mutations (`seeds` must not be empty).
    pub fn mutant(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
        let mut out = seeds[self.below(seeds.len())].clone();
        for _ in 0..=self.below(4) {
            self.mutate(&mut out, seeds);
        }
        out
    }

    fn mutate(&mut self, data: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        let len = data.len();
        let at = self.below(len + 1);
        match self.below(10) {
            // Flip one bit.
            0 if len > 0 => {
                let i = self.below(len);
                data[i] ^= 1 << self.below(8);
            }
            // An interesting byte.
            1 if len > 0 => {
                let i = self.below(len);
                data[i] = [0x00, 0x01, 0x7f, 0x80, 0xff, b'<', b'>', b'&', b'"'][self.below(9)];
            }
            // Cut it short.
            2 => data.truncate(at),
            // Remove a run.
            3 if len > 0 => {
                let end = (at + 1 + self.below(64)).min(len);
                data.drain(at.min(len - 1)..end);
            }
            // Repeat a run (deep nesting, long strings, huge counts).
            4 if len > 0 => {
                let start = self.below(len);
                let run = data[start..(start + 1 + self.below(32)).min(len)].to_vec();
                let times = 1 + self.below(64);
                let insert: Vec<u8> = run
                    .iter()
                    .copied()
                    .cycle()
                    .take(run.len() * times)
                    .collect();
                data.splice(at..at, insert);
            }
            // Splice in a token.
            5 | 6 => {
                let token = TOKENS[self.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            // Splice in part of another seed.
            7 => {
                let other = &seeds[self.below(seeds.len())];
                if !other.is_empty() {
                    let start = self.below(other.len());
                    let end = (start + 1 + self.below(256)).min(other.len());
                    data.splice(at..at, other[start..end].iter().copied());
                }
            }
            // Random bytes.
            8 => {
                let n = 1 + self.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| self.next() as u8).collect();
                data.splice(at..at, bytes);
            }
            // Add to or subtract from a byte (DER lengths and counts).
            _ if len > 0 => {
                let i = self.below(len);
                let delta = 1 + self.below(16) as u8;
                data[i] = if self.below(2) == 0 {
                    data[i].wrapping_add(delta)
                } else {
                    data[i].wrapping_sub(delta)
                };
            }
            _ => data.push(self.next() as u8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mutants_and_another_seed_others() {
        let seeds = vec![b"<plist><dict><key>a</key><string>b</string></dict></plist>".to_vec()];
        let run = |seed| {
            let mut m = Mutator::new(seed);
            (0..50).map(|_| m.mutant(&seeds)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let mutants = run(7);
        assert!(mutants.iter().any(|m| m != &seeds[0]));
        assert!(mutants.iter().any(|m| m.len() < seeds[0].len()));
        assert!(mutants.iter().any(|m| m.len() > seeds[0].len()));
    }
}
