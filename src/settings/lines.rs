//! Splitting a settings file into physical lines without losing a byte.
//!
//! Files from the field mix LF, CRLF and (from old Mac editors) lone CR line ends, and often
//! have no final line end. Every one of those counts as a line end here, so that a line's
//! content never carries a stray `\r` into a value, and the line end itself is kept so the
//! file can be printed back byte for byte.

/// One physical line: its content and the line end that closed it (empty on the last line
/// when the file has no final line end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PhysLine<'a> {
    /// Byte offset of the line's first byte in the whole input.
    pub start: usize,
    /// The line without its line end.
    pub content: &'a [u8],
    /// The line including its line end.
    pub full: &'a [u8],
}

/// Iterator over the physical lines of an input.
pub(crate) struct Lines<'a> {
    src: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'a> {
    pub fn new(src: &'a [u8]) -> Self {
        Self { src, pos: 0 }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = PhysLine<'a>;

    fn next(&mut self) -> Option<PhysLine<'a>> {
        let src = self.src;
        let start = self.pos;
        if start >= src.len() {
            return None;
        }
        let rest = &src[start..];
        let (content_len, end_len) = match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            None => (rest.len(), 0),
            Some(i) if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') => (i, 2),
            Some(i) => (i, 1),
        };
        self.pos = start + content_len + end_len;
        Some(PhysLine {
            start,
            content: &rest[..content_len],
            full: &rest[..content_len + end_len],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(src: &[u8]) -> Vec<&[u8]> {
        Lines::new(src).map(|l| l.content).collect()
    }

    #[test]
    fn every_line_end_style_ends_a_line() {
        assert_eq!(
            contents(b"a\nb\r\nc\rd"),
            vec![&b"a"[..], &b"b"[..], &b"c"[..], &b"d"[..]]
        );
    }

    #[test]
    fn cr_cr_lf_is_two_line_ends() {
        assert_eq!(contents(b"a\r\r\nb"), vec![&b"a"[..], &b""[..], &b"b"[..]]);
    }

    #[test]
    fn lines_cover_the_input_exactly() {
        let src = b"x\r\n\ny\rz\n";
        let joined: Vec<u8> = Lines::new(src).flat_map(|l| l.full.to_vec()).collect();
        assert_eq!(joined, src);
        assert_eq!(Lines::new(src).count(), 4);
    }

    #[test]
    fn empty_input_has_no_lines() {
        assert_eq!(Lines::new(b"").count(), 0);
    }

    #[test]
    fn start_offsets_point_at_each_line() {
        let starts: Vec<usize> = Lines::new(b"ab\r\ncd\ne").map(|l| l.start).collect();
        assert_eq!(starts, vec![0, 4, 7]);
    }
}
