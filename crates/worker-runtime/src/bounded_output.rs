//! A program's output read in bounded memory: the first and the last bytes are kept, with a
//! count of what lay between, however much the program writes.

use std::collections::VecDeque;

/// Default bytes kept of each stream: half from its start, half from its end.
pub const DEFAULT_KEPT_BYTES: usize = 64 * 1024;

/// The head and tail of a stream, and its full length.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BoundedOutput {
    head: Vec<u8>,
    /// The last bytes once the head is full, at most `half` of them.
    tail: VecDeque<u8>,
    total: u64,
    half: usize,
}

impl BoundedOutput {
    pub fn new(kept_bytes: usize) -> BoundedOutput {
        BoundedOutput {
            half: (kept_bytes / 2).max(1),
            ..BoundedOutput::default()
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.head.len() < self.half {
            let n = bytes.len().min(self.half - self.head.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        let bytes = &bytes[bytes.len().saturating_sub(self.half)..];
        let over = (self.tail.len() + bytes.len()).saturating_sub(self.half);
        self.tail.drain(..over);
        self.tail.extend(bytes);
    }

    /// Bytes written in all, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The kept text: whole when it fit, else head, a marker naming what was left out, tail.
    pub fn text(&self) -> String {
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        let kept = (self.head.len() + tail.len()) as u64;
        let head = String::from_utf8_lossy(&self.head);
        let tail = String::from_utf8_lossy(&tail);
        if kept == self.total {
            return format!("{head}{tail}");
        }
        format!("{head}\n[… {} bytes left out …]\n{tail}", self.total - kept)
    }

    /// The last line that is not blank (for a loaded attempt's info).
    pub fn last_line(&self) -> Option<String> {
        let text = self.text();
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut o = BoundedOutput::new(100);
        o.push(b"hello ");
        o.push(b"world\n");
        assert_eq!(o.text(), "hello world\n");
        assert_eq!(o.last_line().as_deref(), Some("hello world"));
    }

    #[test]
    fn long_output_keeps_head_and_tail_whatever_the_chunks() {
        let data: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        for chunk in [1, 7, 49, 50, 51, 4096] {
            let mut o = BoundedOutput::new(100);
            for c in data.chunks(chunk) {
                o.push(c);
            }
            let text = o.text();
            let head = String::from_utf8_lossy(&data[..50]).into_owned();
            let tail = String::from_utf8_lossy(&data[data.len() - 50..]).into_owned();
            assert_eq!(
                text,
                format!("{head}\n[… 9900 bytes left out …]\n{tail}"),
                "{chunk}"
            );
            assert_eq!(o.total(), 10_000);
        }
    }

    #[test]
    fn a_long_stream_is_kept_in_bounded_memory() {
        let mut o = BoundedOutput::new(64);
        for _ in 0..1024 {
            o.push(&[b'x'; 1024]);
        }
        assert_eq!(o.total(), 1 << 20);
        assert!(o.text().len() < 200);
    }
}
