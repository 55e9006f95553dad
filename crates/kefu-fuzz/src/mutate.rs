//! A small deterministic mutator for the bounded runs of `make test`: seeds changed by bit
//! flips, interesting bytes and numbers, inserted tokens, deleted, repeated and spliced
//! ranges, and now and then plain random bytes. The same seed gives the same inputs, so a
//! failure found in `make test` is found again on the next run.
use rand::{Rng, SeedableRng, rngs::StdRng};

/// Tokens that matter to Kefu's formats (JSON, CSV, Markdown, HTML, YAML, protobuf).
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e999",
    b"-0.0",
    b"4294967295",
    b"18446744073709551616",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"99999999999999.99",
    b"\n",
    b"\r\n",
    b"\0",
    b"\"\"",
    b"## ",
    b"# ",
    b"<div>",
    b"</div>",
    b"<script>",
    b"<meta ",
    b"&amp;",
    b"- ",
    b": ",
    b"  ",
    b"\t",
    b"---\n",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xe4\xbd\xa0",
    b"\xf0\x9f\x98\x80",
    b"SF1234567890123",
    b"1Z999AA10123456784",
    b"13800138000",
    b"a@b.co",
    b"\xc2\xa5",
    b"$",
    b"19.99",
    b"2026-11-11T00:00:00Z",
    b"order_id",
    b"format",
    b"kefu.order.v1",
    b"kefu.tracking.v1",
    b"sha256=",
    b"items",
    b"price",
    b"quantity",
    b"text",
    b"label",
    b"sentence",
    b"wait_ms",
    b"channel",
    b"\x08\x96\x01",
    b"\x0a\xff\xff\xff\xff\x0f",
    b"\x12\x80\x80\x80\x80\x10",
];

/// Interesting single bytes.
const BYTES: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'"', b'\\', b'{', b'[', b',', b'\n', b'#', b'<', b'>', b'0', b'9',
    b'-', b'.', b' ',
];

/// Inputs derived from `seeds`, deterministic for a given `seed`.
pub struct Mutator {
    rng: StdRng,
    seeds: Vec<Vec<u8>>,
    max_len: usize,
}

impl Mutator {
    pub fn new(seed: u64, seeds: Vec<Vec<u8>>, max_len: usize) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            seeds,
            max_len: max_len.max(1),
        }
    }

    /// The next input.
    pub fn next_input(&mut self) -> Vec<u8> {
        if self.seeds.is_empty() || self.rng.random_ratio(1, 10) {
            let n = self.rng.random_range(0..self.max_len.min(512));
            return (0..n).map(|_| self.rng.random()).collect();
        }
        let mut d = self.seeds[self.rng.random_range(0..self.seeds.len())].clone();
        let rounds = 1 << self.rng.random_range(0..4);
        for _ in 0..rounds {
            self.mutate(&mut d);
        }
        d.truncate(self.max_len);
        d
    }

    fn pos(&mut self, d: &[u8]) -> usize {
        self.rng.random_range(0..=d.len())
    }

    fn mutate(&mut self, d: &mut Vec<u8>) {
        match self.rng.random_range(0..9) {
            0 if !d.is_empty() => {
                let i = self.rng.random_range(0..d.len());
                d[i] ^= 1 << self.rng.random_range(0..8);
            }
            1 if !d.is_empty() => {
                let i = self.rng.random_range(0..d.len());
                d[i] = BYTES[self.rng.random_range(0..BYTES.len())];
            }
            2 => {
                let at = self.pos(d);
                let t = TOKENS[self.rng.random_range(0..TOKENS.len())];
                d.splice(at..at, t.iter().copied());
            }
            3 if !d.is_empty() => {
                let a = self.rng.random_range(0..d.len());
                let b = (a + self.rng.random_range(1..=16)).min(d.len());
                d.drain(a..b);
            }
            4 if !d.is_empty() => {
                // Repeat a range: deep nesting, many rows, many fields.
                let a = self.rng.random_range(0..d.len());
                let b = (a + self.rng.random_range(1..=32)).min(d.len());
                let chunk = d[a..b].to_vec();
                let times = self.rng.random_range(1..=64);
                let at = b;
                d.splice(
                    at..at,
                    chunk.iter().copied().cycle().take(chunk.len() * times),
                );
            }
            5 if self.seeds.len() > 1 => {
                let other = &self.seeds[self.rng.random_range(0..self.seeds.len())];
                let from = self.rng.random_range(0..=other.len());
                let to = self.rng.random_range(from..=other.len());
                let part = other[from..to].to_vec();
                let at = self.pos(d);
                d.splice(at..at, part);
            }
            6 => {
                let at = self.pos(d);
                d.truncate(at);
            }
            7 if !d.is_empty() => {
                // Replace a run of digits with an extreme number.
                let i = self.rng.random_range(0..d.len());
                if let Some(s) = d[i..].iter().position(u8::is_ascii_digit).map(|s| s + i) {
                    let e = d[s..]
                        .iter()
                        .position(|c| !c.is_ascii_digit())
                        .map_or(d.len(), |e| e + s);
                    let n: &[u8] = match self.rng.random_range(0..5) {
                        0 => b"0",
                        1 => b"4294967295",
                        2 => b"18446744073709551615",
                        3 => b"99999999999999999999999",
                        _ => b"2147483648",
                    };
                    d.splice(s..e, n.iter().copied());
                }
            }
            _ => {
                let at = self.pos(d);
                let n = self.rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.random()).collect();
                d.splice(at..at, bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_inputs() {
        let seeds = vec![b"{\"a\":1}".to_vec(), b"x,y\n1,2\n".to_vec()];
        let mut a = Mutator::new(7, seeds.clone(), 256);
        let mut b = Mutator::new(7, seeds, 256);
        let xs: Vec<_> = (0..100).map(|_| a.next_input()).collect();
        let ys: Vec<_> = (0..100).map(|_| b.next_input()).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| x.len() <= 256));
        assert!(xs.windows(2).any(|w| w[0] != w[1]));
    }
}
