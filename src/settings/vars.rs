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

/// `$MODEL4` of a phone whose `$MODEL` is `model`: its first four characters (`9641` for a
/// `9641GS`, `J179` for a `J179`), all of it when shorter (Workplace's `acw`). Scripts test
/// `$MODEL4` against four-character names (`IF $MODEL4 SEQ 9641`), so a phone whose whole model
/// stood there would never match its own section.
pub fn model4(model: &str) -> String {
    model.chars().take(4).collect()
}

impl Vars {
    /// The variables an Avaya phone of `model` in `group` with `mac` tests, as the phone sets
    /// them: `MODEL` the whole model, `MODEL4` its first four characters ([`model4`]), `GROUP`
    /// (0, the phones' default, when the inventory gives none) and `MACADDR`. `SIG` and
    /// `SIG_IN_USE` are left out: they depend on what the phone runs, not on the inventory, so a
    /// condition on them is skipped, as for any variable the phone does not know.
    pub fn for_phone(model: &str, group: &str, mac: &str) -> Vars {
        let group = if group.is_empty() { "0" } else { group };
        Vars::new()
            .with("MODEL", model)
            .with("MODEL4", model4(model))
            .with("GROUP", group)
            .with("MACADDR", mac)
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
    fn a_phone_tests_its_whole_model_and_its_first_four_characters() {
        let v = Vars::for_phone("9641GS", "", "001122aabbcc");
        assert_eq!(v.get(b"MODEL"), Some("9641GS"));
        assert_eq!(v.get(b"MODEL4"), Some("9641"));
        assert_eq!(v.get(b"GROUP"), Some("0"));
        assert_eq!(v.get(b"MACADDR"), Some("001122aabbcc"));
        assert_eq!(
            Vars::for_phone("J179", "2", "").get(b"MODEL4"),
            Some("J179")
        );
        assert_eq!(Vars::for_phone("J179", "2", "").get(b"GROUP"), Some("2"));
        assert_eq!(model4("acw"), "acw");
        assert_eq!(model4("é1234"), "é123");
    }

    #[test]
    fn an_empty_name_never_matches() {
        let v = Vars::new().with("", "boom");
        assert_eq!(v.substitute(b"$X"), b"$X");
    }
}
