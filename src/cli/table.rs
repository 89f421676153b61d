//! Plain aligned tables for people; scripts use `--json`.
//!
//! Cells can hold text from the network (a DHCP client's host name and vendor class, a
//! phone's User-Agent), so control characters are shown escaped (`\n`, `\u{1b}`): a line
//! break would forge a row, and an escape sequence would be run by the administrator's
//! terminal. Long values are kept whole, so what is listed can be pasted into the next command,
//! except text a client chose that sits before other columns ([`clip`]): one phone's 255-byte
//! host name would push the rest of every row off the screen.

pub fn print(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", render(headers, rows));
}

/// `text` as one table cell: control characters escaped as Rust writes them, the rest as is
/// (non-ASCII letters in labels stay readable).
fn cell(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Longest network-supplied cell shown whole in a column followed by others; `--json` has it
/// all.
pub const CLIP: usize = 40;

/// `text` cut to [`CLIP`] characters, ending in `…` when cut.
pub fn clip(text: String) -> String {
    match text.char_indices().nth(CLIP - 1) {
        Some((end, _)) if text.chars().count() > CLIP => format!("{}…", &text[..end]),
        _ => text,
    }
}

pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| cell(c)).collect())
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_columns() {
        let out = super::render(
            &["MAC", "MODEL"],
            &[
                vec!["001122aabbcc".into(), "J179".into()],
                vec!["x".into(), "".into()],
            ],
        );
        assert_eq!(out, "MAC           MODEL\n001122aabbcc  J179\nx\n");
    }

    #[test]
    fn long_client_text_is_clipped() {
        let long = "h".repeat(255);
        let clipped = super::clip(long);
        assert_eq!(clipped.chars().count(), super::CLIP);
        assert!(clipped.ends_with("hh…"), "{clipped}");
        let exact = "é".repeat(super::CLIP);
        assert_eq!(super::clip(exact.clone()), exact);
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        let out = super::render(
            &["HOST", "VENDOR CLASS"],
            &[vec!["a\nb\u{1b}[31m".into(), "Zoë\t1".into()]],
        );
        assert_eq!(
            out,
            "HOST            VENDOR CLASS\na\\nb\\u{1b}[31m  Zoë\\t1\n"
        );
    }
}
