//! The device variables a script can test (`IF $MODEL4 ...`) and use in file names
//! (`GET $MACADDR.txt`).

/// Variables the reference lists as testable by phones; the linter warns about others
/// because a condition on an unknown variable is always skipped.
pub const KNOWN_VARIABLES: &[&str] = &[
    "APPNAME_IN_USE",
    "GEN",
    "GROUP",
    "HWVERS",
    "IPADD",
    "MACADDR",
    "MODEL",
    "MODEL4",
    "MODEL6",
    "SERIALNO",
    "SIG",
    "SIG_IN_USE",
    "SUBNET",
    "VPNACTIVE",
];

/// Device variables by name. Names compare without regard to ASCII case (`$model4` and
/// `$MODEL4` are the same variable); values are kept exactly, because `SEQ` compares them
/// exactly on current phones.
///
/// A phone defines a dozen or so variables, so a small vector searched in order beats a hash
/// map and needs no allocation per lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    entries: Vec<(String, String)>,
}

impl Vars {
    /// No variables: every condition is skipped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`, replacing an earlier value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self
            .entries
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            Some(entry) => entry.1 = value,
            None => self.entries.push((name, value)),
        }
    }

    /// Builder form of [`Vars::insert`].
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    /// The value of the variable called `name` (bytes, as it appears in a script).
    pub fn get(&self, name: &[u8]) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces `$NAME` in a `GET` file name with the variable's value.
    ///
    /// After a `$` the longest defined variable name that the following letters, digits and
    /// underscores start with is substituted, so `$MACADDR.txt` and `$MODEL4_x.txt` both work;
    /// a `$` followed by no defined name is kept literally (the fetch then fails, as on a
    /// phone that cannot expand it).
    pub fn substitute(&self, text: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() + 16);
        let mut i = 0;
        while i < text.len() {
            let b = text[i];
            i += 1;
            if b != b'$' {
                out.push(b);
                continue;
            }
            let run = text[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            let word = &text[i..i + run];
            let best = self
                .entries
                .iter()
                .filter(|(n, _)| {
                    word.len() >= n.len() && word[..n.len()].eq_ignore_ascii_case(n.as_bytes())
                })
                .max_by_key(|(n, _)| n.len());
            match best {
                Some((n, v)) if !n.is_empty() => {
                    out.extend_from_slice(v.as_bytes());
                    i += n.len();
                }
                _ => out.push(b'$'),
            }
        }
        out
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Vars {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut vars = Self::new();
        for (name, value) in iter {
            vars.insert(name, value);
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars::new()
            .with("MODEL4", "J179")
            .with("MODEL", "J179D02A")
            .with("MACADDR", "c81fea83e85a")
    }

    #[test]
    fn names_ignore_case_values_do_not() {
        let v = vars().with("model4", "j179");
        assert_eq!(v.get(b"Model4"), Some("j179"));
        assert_eq!(v.get(b"GROUP"), None);
    }

    #[test]
    fn substitutes_longest_known_name() {
        let v = vars();
        assert_eq!(v.substitute(b"$MACADDR.txt"), b"c81fea83e85a.txt");
        assert_eq!(v.substitute(b"$MODEL4_x.txt"), b"J179_x.txt");
        assert_eq!(v.substitute(b"$MODEL.cfg"), b"J179D02A.cfg");
        assert_eq!(v.substitute(b"a/$MODEL4/$MACADDR"), b"a/J179/c81fea83e85a");
    }

    #[test]
    fn unknown_or_bare_dollars_stay() {
        let v = vars();
        assert_eq!(v.substitute(b"$SERIALNO.txt"), b"$SERIALNO.txt");
        assert_eq!(v.substitute(b"cost$"), b"cost$");
        assert_eq!(v.substitute(b"$$MACADDR"), b"$c81fea83e85a");
    }

    #[test]
    fn an_empty_name_never_matches() {
        let v = Vars::new().with("", "boom");
        assert_eq!(v.substitute(b"$X"), b"$X");
    }
}
