//! Finding credentials in a settings file an operator uploaded, whatever its vendor's format.
//!
//! Files from the field often carry a site-wide SIP or admin password in a common file
//! (`SET FORCE_SIP_PASSWORD "…"` in a `46xxsettings.txt`, `account.1.password = …` in a
//! Yealink common cfg, `reg.1.auth.password="…"` in a Poly cfg, `<Password_1_>…</Password_1_>`
//! in a Cisco XML). Such a file must not go to whoever asks, so the phone service reads every
//! static file with [`secret_lines`] and serves one that holds a secret only to a device that
//! proves who it is; the admin preview shows it through [`mask_secrets`] so a secret stays
//! write-only. A miss leaks a password to anyone on the network and a false alarm locks phones
//! out of a common file, so this is a reading of names, not of any one grammar.
//!
//! A name holds a secret ([`secret_name`]) when one of its words says password, passwd, pswd,
//! pwd, passphrase, secret or psk, is `pass`, or ends in `pin` (`user_pass1`, `voicemail.pin.1`,
//! `Voice_Mail_PIN_1_`), and no qualifier such as length, prefix, dial, min, max, expire,
//! enable, type, timeout, policy, hint or save comes after that word (`min_password_length`
//! and `features.password_dial.prefix` describe a password, `admin_mode_password` is one); or
//! when it is a Grandstream P-value that holds a password (`P34`) or one of Cisco's special
//! purpose parameters `GPP_SA`–`GPP_SD` (provisioning keys). Words read as whole words (split
//! at `.`, `_`, `-`, blanks, digits and camelCase) also say secret when they name a credential
//! other than a password: `token`, `community` (SNMP's password), `pw`; `key` only after a
//! word that makes it a cryptographic key (`aes_key_16`, `configEncryption.key`,
//! `private_key`, `api_key`), never alone, since `key` mostly names a button
//! (`linekey.1.value`, `expansion_module.1.key.1.value`); and `hash` only after `user`, `auth`,
//! `digest` or a password word (Snom's `user_hash`, a digest hash that logs in as the password
//! does). Avaya's `SNMPSTRING` is its SNMP community. Its value counts when it is not empty,
//! not Yealink's `%NULL%` and not a switch (`0`, `1`, `true`, `off`…).
//!
//! Whatever its name, a value holding a URL with a login (`https://prov:Hunter2pw@host/` in
//! `static.auto_provision.server.url`, Poly's `device.prov.serverName`, Cisco's
//! `Profile_Rule`) holds a secret, its password ([`url_logins`]); only the password is masked.
//!
//! Each line is read in every form the vendors use:
//! - `SET NAME value`, any case of SET and any blank after it (Avaya); and every `SET` also
//!   as the evaluator reads it, so a quoted value continued on later lines or a quoted name is
//!   read as the phone reads it;
//! - `name = value`, `name=value` and `name: value`, the name one token or words separated by
//!   blanks (`sip line1 password: x`, Aastra/Mitel), with an optional Snom permission flag
//!   (`user_pass1$: x`, `http_pass&: x`, `admin_mode_password!: x`), Grandstream P-values
//!   (`P34 = x`);
//! - `Name "value";` and `Name ! "value";` statements (Cisco SPA legacy text);
//! - `name="value"` and `name='value'` anywhere in a line (XML attributes, Poly);
//! - `"name": "value"` and `"name": value` anywhere in a line (JSON);
//! - `<name …>value</name>` (Cisco, Snom XML, Grandstream `<P34>`), the value also in a
//!   CDATA section or after a comment;
//! - `<tag name="…">value</tag>` and `<tag id="…" value="…"/>`: an element whose `name`, `id`
//!   or `key` attribute names the secret holds it in its `value` attribute, else in its text
//!   (Grandstream XML v2);
//! - `--key value` and `--pwd value` options of a Cisco resync URL (`[--key "…"] http://…`),
//!   anywhere in a line;
//! - `&name=value` pairs (Grandstream's legacy `cfg{mac}`, `P30=…&P34=…&gnkey=0b82`; a URL's
//!   query);
//! - a keyed element's value in its child elements (Grandstream XML v2, `<item
//!   name="account.1.sip"><part name="password">…</part></item>`).
//!
//! An element or attribute name with a namespace prefix (`<voip:AdminPIN>`, `ns:password="…"`)
//! is judged by its local name, as the phone reads it, and reported as written.
//!
//! Elements and the attributes of their tags are read over the whole file rather than line by
//! line: a pretty-printed file may put an element's text, the attributes of its open tag, or
//! the `=` of an attribute on lines of their own, and a password written that way must not go
//! to whoever asks.
//!
//! Comment lines (`#`, `;`, `//`, `!`, so also Avaya `##`) are skipped by the line forms (the
//! element reading, like XML comments, reads them too: the safe side), and a UTF-8 byte order
//! mark before the first line is read past. Each form reads in one pass (no search starts
//! again from a byte it has read), so a file costs time in proportion to its size: the scan
//! runs on the phone request path, where a crafted upload must not stall it.

use std::ops::Range;

use super::script::{Kind, Script, Value};

/// Which reading of files this is. Raise it whenever what counts as a secret changes: the
/// answer for each static file is stored with it, and files read by an older reading are read
/// again at the next start.
pub const READING: u8 = 10;

/// One assignment of a value to a secret-looking name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretLine {
    /// 1-based.
    pub line: usize,
    pub name: String,
    /// Where the value lies in the bytes given to [`secret_lines`] (without its quotes), so
    /// that [`mask_secrets`] can hide exactly the value and nothing else.
    pub value: Range<usize>,
    /// The secret is the password of a login in a URL that `name` is given
    /// (`https://prov:Hunter2pw@host/`), not the whole value: `value` is the password alone.
    pub in_url: bool,
}

/// Words that make a name a password's (matched inside a word, so `PROCPSWD` and
/// `localAdminPassword` count).
const SECRET_WORDS: [&[u8]; 7] = [
    b"password",
    b"passwd",
    b"pswd",
    b"pwd",
    b"passphrase",
    b"secret",
    // A Wi-Fi or VPN pre-shared key (Poly's `device.wifi.psk.key`, `WPA2PSK`): whoever has it
    // joins the network.
    b"psk",
];

/// Words that, after a secret word, make the name a setting about the secret rather than the
/// secret itself (`min_password_length = 8`, `features.password_dial.prefix = *`).
const QUALIFIERS: [&[u8]; 28] = [
    b"length",
    b"len",
    b"prefix",
    b"dial",
    b"min",
    b"max",
    b"minimum",
    b"maximum",
    b"expire",
    b"expires",
    b"expiry",
    b"expiration",
    b"enable",
    b"enabled",
    b"type",
    b"timeout",
    b"policy",
    b"complexity",
    b"strength",
    b"rule",
    b"rules",
    b"hint",
    b"save",
    b"retry",
    b"retries",
    b"attempts",
    b"count",
    b"history",
];

/// Grandstream names settings by number; these P-values hold a password: P2 admin password,
/// P34 account 1 SIP authenticate password, P196 end-user password, P406, P506, P606, P1706 and
/// P1806 the authenticate passwords of accounts 2–6, P1359 the XML config file password (the
/// AES key of every encrypted `cfg{mac}.xml`: whoever reads it from a common `cfg.xml` reads
/// them all). Source: Grandstream's configuration template for GXP2130/2135/2140/2160/2170
/// firmware 1.0.11.16 (the accounts), the GXP21xx/WP820 administration guides (P2 "Admin
/// Password"), Grandstream's XML provisioning guide (P1359 "XML Config File Password"), and
/// provisioning code written against those phones (P196 "End User Password").
const GRANDSTREAM_SECRETS: [u32; 9] = [2, 34, 196, 406, 506, 606, 1359, 1706, 1806];

/// Values that switch a feature rather than hold a credential (`SET PRESERVE_LOGIN_PASSWORD 1`),
/// and Yealink's explicit empty value.
const NOT_VALUES: [&[u8]; 13] = [
    b"0",
    b"1",
    b"true",
    b"false",
    b"yes",
    b"no",
    b"on",
    b"off",
    b"enable",
    b"disable",
    b"enabled",
    b"disabled",
    b"%NULL%",
];

/// The UTF-8 byte order mark some editors put first, which would otherwise be read as part of
/// the first line's name.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Whether a setting's name says it holds a credential.
pub fn secret_name(name: &str) -> bool {
    is_secret_name(name.as_bytes())
}

fn is_secret_name(name: &[u8]) -> bool {
    grandstream_secret(name)
        || cisco_special_purpose(name)
        || name.eq_ignore_ascii_case(b"SNMPSTRING")
        || Words::of(name).say_secret()
}

/// Whole words that name a credential (matched as a word, never inside one): an
/// authentication token (Avaya's `SIP_TOKEN`, Cisco's `SIP_Auth_Token_1_`), an SNMP
/// community, which is SNMP's password (`static.snmp.community`, `device.snmp.communityName`),
/// and `pw` (Snom's `keyboard_lock_pw`, the code that unlocks the keypad).
const CREDENTIAL_WORDS: [&[u8]; 3] = [b"token", b"community", b"pw"];

/// Words after which the word `key` is a cryptographic key's, never a button's
/// (`static.auto_provision.aes_key_16.com`, the key that decrypts Yealink's provisioning files;
/// Poly's `device.sec.configEncryption.key`; `private_key`, `api_key`, `shared_key`,
/// `openvpn.key`). The bare word `key` is no credential: `expansion_module.1.key.1.value`,
/// `key.scrolling.timeout` and `features.key_as_send` name buttons and keypads.
const KEY_KINDS: [&[u8]; 16] = [
    b"aes",
    b"des",
    b"encryption",
    b"encrypt",
    b"crypt",
    b"crypto",
    b"cipher",
    b"private",
    b"api",
    b"auth",
    b"shared",
    b"wep",
    b"wpa",
    b"vpn",
    b"openvpn",
    b"ipsec",
];

/// Words after which the word `hash` is a credential's: a digest hash of the login, which
/// authenticates as the password does (Snom's `user_hash`, a `pwd_hash`, a `digest_hash`).
const HASH_KINDS: [&[u8]; 5] = [b"user", b"auth", b"digest", b"login", b"credential"];

/// Words that, after a cryptographic key's name, make it a setting about the key: Yealink's
/// `static.auto_provision.aes_key_in_file` is a switch, a `…key_url` or `…key_file` says where
/// the key is, not what.
const KEY_QUALIFIERS: [&[u8]; 6] = [b"in", b"file", b"url", b"path", b"size", b"format"];

/// What the words of a name read so far say: whether one names a secret, and whether a
/// qualifier came after it. Reading a name's words on from another's (`then`) judges the two
/// joined by a `.` without building the joined name, so a key read once judges each of its
/// element's children at the cost of the child's name alone.
#[derive(Debug, Clone, Copy, Default)]
struct Words {
    secret: bool,
    qualified: bool,
    /// The secret named last is a cryptographic key ([`KEY_KINDS`]), which [`KEY_QUALIFIERS`]
    /// describe too.
    key: bool,
    /// The last word read was one of [`KEY_KINDS`], so a `key` after it is a credential.
    key_kind: bool,
    /// The last word read was one of [`HASH_KINDS`], or itself a secret word (`pwd_hash`).
    hash_kind: bool,
}

impl Words {
    fn of(name: &[u8]) -> Words {
        Words::default().then(name)
    }

    fn then(mut self, name: &[u8]) -> Words {
        for word in words(name) {
            let is = |list: &[&[u8]]| list.iter().any(|w| word.eq_ignore_ascii_case(w));
            let secret = secret_word(word);
            if let Some(rest) = secret {
                self.secret = true;
                self.key = false;
                self.qualified = QUALIFIERS.iter().any(|q| starts_with_ignore_case(rest, q));
            } else if is(&CREDENTIAL_WORDS)
                || (self.key_kind && word.eq_ignore_ascii_case(b"key"))
                || (self.hash_kind && word.eq_ignore_ascii_case(b"hash"))
            {
                self.secret = true;
                self.key = word.eq_ignore_ascii_case(b"key");
                self.qualified = false;
            } else if self.secret && (is(&QUALIFIERS) || (self.key && is(&KEY_QUALIFIERS))) {
                self.qualified = true;
            }
            self.key_kind = is(&KEY_KINDS);
            self.hash_kind = is(&HASH_KINDS) || secret.is_some();
        }
        self
    }

    fn say_secret(self) -> bool {
        self.secret && !self.qualified
    }
}

/// `GPP_SA` to `GPP_SD`: Cisco's special purpose parameters, which "hold keys or passwords used
/// in provisioning" (Cisco MPP administration guides, macro expansion variables `$SA`–`$SD`,
/// the arguments of a resync URL's `--key`); their names say nothing of a password.
fn cisco_special_purpose(name: &[u8]) -> bool {
    name.len() == 6
        && name[..5].eq_ignore_ascii_case(b"gpp_s")
        && matches!(name[5].to_ascii_lowercase(), b'a'..=b'd')
}

/// `P34`, `p406`: a Grandstream P-value listed in [`GRANDSTREAM_SECRETS`].
fn grandstream_secret(name: &[u8]) -> bool {
    let Some((b'P' | b'p', digits)) = name.split_first() else {
        return false;
    };
    (1..=6).contains(&digits.len())
        && digits.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .is_some_and(|n: u32| GRANDSTREAM_SECRETS.contains(&n))
}

/// The words of a name: runs of letters or of digits, split also where a lower-case letter
/// meets an upper-case one, so `user_pass1`, `voicemail.pin.1`, `Voice_Mail_PIN_1_` and
/// `passwordLength` show their `pass`, `pin` and `length`.
fn words(name: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = name;
    std::iter::from_fn(move || {
        let start = rest.iter().position(u8::is_ascii_alphanumeric)?;
        let from = &rest[start..];
        let len = from
            .windows(2)
            .position(|w| word_boundary(w[0], w[1]))
            .map_or(from.len(), |i| i + 1);
        let (word, tail) = from.split_at(len);
        rest = tail;
        Some(word)
    })
}

fn word_boundary(a: u8, b: u8) -> bool {
    !b.is_ascii_alphanumeric()
        || (a.is_ascii_lowercase() && b.is_ascii_uppercase())
        || a.is_ascii_digit() != b.is_ascii_digit()
}

/// If the word names a secret, what follows the secret inside it (`length` in `pwdlength`,
/// nothing in `password`), for the qualifier check.
fn secret_word(word: &[u8]) -> Option<&[u8]> {
    if word.eq_ignore_ascii_case(b"pass") || ends_with_ignore_case(word, b"pin") {
        return Some(&[]);
    }
    SECRET_WORDS
        .iter()
        .filter_map(|w| {
            word.windows(w.len())
                .rposition(|window| window.eq_ignore_ascii_case(w))
                .map(|at| at + w.len())
        })
        .max()
        .and_then(|end| word.get(end..))
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn ends_with_ignore_case(text: &[u8], suffix: &[u8]) -> bool {
    text.len() >= suffix.len() && text[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// Whether a value gives a credential: not empty, not `%NULL%`, not a switch.
fn holds_value(value: &[u8]) -> bool {
    let v = value.trim_ascii();
    let v = v
        .strip_prefix(b"\"")
        .or_else(|| v.strip_prefix(b"'"))
        .unwrap_or(v);
    let v = v
        .strip_suffix(b"\"")
        .or_else(|| v.strip_suffix(b"'"))
        .unwrap_or(v);
    let v = v.trim_ascii();
    !v.is_empty() && !NOT_VALUES.iter().any(|s| v.eq_ignore_ascii_case(s))
}

/// Every assignment in `bytes` of a value to a secret-looking name, in order: by line, and
/// within a line by where the value starts (one per value; a line may hold several). An
/// element's value that runs over several lines is reported at the line where it starts.
///
/// A file that looks like UTF-16 ([`Utf16::of`]) is read both as bytes and as its text, and
/// what either finds counts: a byte order mark alone does not prove the rest is UTF-16, and a
/// miss leaks a password while a false alarm only asks for proof.
pub fn secret_lines(bytes: &[u8]) -> Vec<SecretLine> {
    let mut out = byte_secret_lines(bytes);
    if let Some(utf16) = Utf16::of(bytes) {
        out.extend(utf16.secret_lines());
        out.sort_by_key(|s| (s.value.start, s.value.end));
        out.dedup_by_key(|s| (s.value.start, s.value.end));
    }
    out
}

/// A file in UTF-16, read as UTF-8 text with the way back to its bytes.
struct Utf16 {
    big_endian: bool,
    /// The file's text in UTF-8.
    text: Vec<u8>,
    /// For each byte of `text`, and for its end, the offset in the file of the code unit that
    /// starts its character.
    at: Vec<usize>,
}

impl Utf16 {
    /// The UTF-16 text of `bytes`, when they start as XML parsers recognise it: a byte order
    /// mark, or `<?` in either byte order (XML 1.0, appendix F).
    fn of(bytes: &[u8]) -> Option<Utf16> {
        let (big_endian, start) = match bytes {
            [0xFF, 0xFE, ..] => (false, 2),
            [0xFE, 0xFF, ..] => (true, 2),
            [b'<', 0, b'?', 0, ..] => (false, 0),
            [0, b'<', 0, b'?', ..] => (true, 0),
            _ => return None,
        };
        let units = bytes[start..].chunks_exact(2).map(|pair| {
            let pair = [pair[0], pair[1]];
            match big_endian {
                true => u16::from_be_bytes(pair),
                false => u16::from_le_bytes(pair),
            }
        });
        let mut text = Vec::with_capacity(bytes.len());
        let mut at = Vec::with_capacity(bytes.len() + 1);
        let mut offset = start;
        for c in char::decode_utf16(units) {
            // An unpaired surrogate is one unit, as is the replacement character.
            let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
            let mut buf = [0; 4];
            let utf8 = c.encode_utf8(&mut buf).as_bytes();
            text.extend_from_slice(utf8);
            at.extend(std::iter::repeat_n(offset, utf8.len()));
            offset += 2 * c.len_utf16();
        }
        at.push(offset);
        Some(Utf16 {
            big_endian,
            text,
            at,
        })
    }

    /// What [`byte_secret_lines`] finds in the text, its values as offsets in the file.
    fn secret_lines(&self) -> Vec<SecretLine> {
        let file = |i: usize| {
            self.at
                .get(i)
                .or(self.at.last())
                .copied()
                .unwrap_or_default()
        };
        byte_secret_lines(&self.text)
            .into_iter()
            .map(|s| SecretLine {
                value: file(s.value.start)..file(s.value.end),
                ..s
            })
            .collect()
    }

    /// `mask` in the file's encoding.
    fn encode(&self, mask: &str) -> Vec<u8> {
        mask.encode_utf16()
            .flat_map(|u| match self.big_endian {
                true => u.to_be_bytes(),
                false => u.to_le_bytes(),
            })
            .collect()
    }
}

/// [`secret_lines`] of `bytes` read as bytes (ASCII, UTF-8 or any other ASCII-compatible
/// encoding).
fn byte_secret_lines(bytes: &[u8]) -> Vec<SecretLine> {
    let mut out = Vec::new();
    let mut found = Vec::new();
    let mut in_elements = Vec::new();
    elements(bytes, &mut in_elements);
    in_elements.sort_by_key(|a| a.value.start);
    let mut in_elements = in_elements.into_iter().peekable();
    let mut start = if bytes.starts_with(BOM) { BOM.len() } else { 0 };
    let mut number = 0;
    while let Some(rest) = bytes.get(start..) {
        number += 1;
        // Lines end in LF, CR LF, or (old Macintosh files) CR alone.
        let len = rest
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(rest.len());
        let raw = &rest[..len];
        let line = raw.trim_ascii();
        let offset = start + (raw.len() - raw.trim_ascii_start().len());
        if !["#", ";", "//", "!"]
            .iter()
            .any(|c| line.starts_with(c.as_bytes()))
        {
            assignments(line, &mut found);
        }
        // Found in this line and in the elements that start in it, in the file's offsets.
        let mut here: Vec<SecretLine> = found
            .drain(..)
            .map(|a| SecretLine {
                line: number,
                name: String::from_utf8_lossy(&line[a.name]).into_owned(),
                value: offset + a.value.start..offset + a.value.end,
                in_url: a.in_url,
            })
            .collect();
        while let Some(a) = in_elements.next_if(|a| a.value.start <= start + len) {
            here.push(SecretLine {
                line: number,
                name: String::from_utf8_lossy(&bytes[a.name]).into_owned(),
                value: a.value,
                in_url: a.in_url,
            });
        }
        // By start, the longer first, so that a value found whole comes before a login in a URL
        // inside it, which is part of that secret rather than another (one pass).
        here.sort_by_key(|s| (s.value.start, std::cmp::Reverse(s.value.end)));
        here.dedup_by_key(|s| (s.value.start, s.value.end));
        let mut whole_to = 0;
        here.retain(|s| match s.in_url {
            true => s.value.end > whole_to,
            false => {
                whole_to = whole_to.max(s.value.end);
                true
            }
        });
        out.append(&mut here);
        start += match rest.get(len..len + 2) {
            Some(b"\r\n") => len + 2,
            _ => len + 1,
        };
    }
    script_sets(bytes, &mut out);
    out
}

/// `SET` statements read the way the evaluator (and so the phone) reads them, which the line
/// forms cannot: a quoted value continued on later lines (`SET FORCE_SIP_PASSWORD "` with the
/// password on the next line) and a quoted name (`SET "ADMIN_PASSWORD"1234`). Each one found
/// replaces what the line forms found inside its value, so the whole value is masked and
/// reported once, at the statement's first line.
fn script_sets(bytes: &[u8], out: &mut Vec<SecretLine>) {
    let script = Script::parse(bytes);
    for statement in script.statements() {
        let Kind::Set(set) = &statement.kind else {
            continue;
        };
        let text = match set.value {
            Value::Bare(text) => text,
            Value::Quoted { text, .. } => text,
            Value::Missing => continue,
        };
        let holds = set.value.effective().is_some_and(|v| holds_value(&v));
        if !holds || !is_secret_name(set.name) {
            continue;
        }
        // Both borrow from `bytes`, so the difference of their addresses is the offset.
        let at = text.as_ptr() as usize - bytes.as_ptr() as usize;
        let value = at..at + text.len();
        out.retain(|s| s.value.end <= value.start || s.value.start >= value.end);
        let place = out.partition_point(|s| s.value.start < value.start);
        out.insert(
            place,
            SecretLine {
                line: statement.line,
                name: String::from_utf8_lossy(set.name).into_owned(),
                value,
                in_url: false,
            },
        );
    }
}

/// `bytes` with every value [`secret_lines`] finds replaced by `mask`, every other byte as it
/// was, so an operator can see a file without the secrets it carries.
pub fn mask_secrets(bytes: &[u8], mask: &str) -> Vec<u8> {
    // A value found in a UTF-16 file's text is masked in its encoding.
    let mut found: Vec<(Range<usize>, Vec<u8>)> = byte_secret_lines(bytes)
        .into_iter()
        .map(|s| (s.value, mask.as_bytes().to_vec()))
        .collect();
    if let Some(utf16) = Utf16::of(bytes) {
        let encoded = utf16.encode(mask);
        found.extend(
            utf16
                .secret_lines()
                .into_iter()
                .map(|s| (s.value, encoded.clone())),
        );
        found.sort_by_key(|(value, _)| (value.start, value.end));
    }
    let mut hidden: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
    for (value, mask) in found {
        match hidden.last_mut() {
            Some((last, _)) if value.start < last.end => last.end = last.end.max(value.end),
            _ => hidden.push((value, mask)),
        }
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut copied = 0;
    for (range, mask) in hidden {
        out.extend_from_slice(&bytes[copied..range.start]);
        out.extend_from_slice(&mask);
        copied = range.end;
    }
    out.extend_from_slice(&bytes[copied..]);
    out
}

/// A secret assignment within one line: where its name and its value are.
struct Assignment {
    name: Range<usize>,
    value: Range<usize>,
    /// As [`SecretLine::in_url`].
    in_url: bool,
}

impl Assignment {
    fn whole(name: Range<usize>, value: Range<usize>) -> Assignment {
        Assignment {
            name,
            value,
            in_url: false,
        }
    }
}

/// Records the assignment if its name is a secret's and its value gives one; otherwise each
/// login in a URL in its value ([`url_logins`]).
fn offer(line: &[u8], name: Range<usize>, value: Range<usize>, out: &mut Vec<Assignment>) {
    let Some(n) = line.get(name.clone()) else {
        return;
    };
    offer_judged(line, is_secret_name(n), name, value, out);
}

/// [`offer`] with the name judged by the caller.
fn offer_judged(
    line: &[u8],
    secret_name: bool,
    name: Range<usize>,
    value: Range<usize>,
    out: &mut Vec<Assignment>,
) {
    let Some(v) = line.get(value.clone()) else {
        return;
    };
    if secret_name && holds_value(v) {
        out.push(Assignment::whole(name, value));
        return;
    }
    for password in url_logins(v) {
        out.push(Assignment {
            name: name.clone(),
            value: value.start + password.start..value.start + password.end,
            in_url: true,
        });
    }
}

/// The password of each login in a URL in `value` (`Hunter2pw` in
/// `https://prov:Hunter2pw@host/`, `PlcmSpIp` in `ftp://PlcmSpIp:PlcmSpIp@host`), as ranges
/// of `value`. Whoever reads it logs in to the provisioning server as the phones do, whatever
/// the setting's name (`static.auto_provision.server.url`, `device.prov.serverName`,
/// Cisco's `Profile_Rule`). The URL's authority is read by the parser that masks such logins
/// elsewhere ([`crate::firmware::authority`]). A login without a password
/// (`ftp://anonymous@host`) and one whose password is a macro the phone fills in (`$PWD`) give
/// none. A URL runs from its scheme to a blank, a quote, `<` or `>`; one pass over `value`.
pub fn url_logins(value: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        loop {
            let sep = find_seq(value, at, b"://")?;
            // The scheme: letters, digits, `+`, `-`, `.`, starting with a letter, read back only
            // to where the last URL ended.
            let mut start = sep;
            while start > at && is_scheme_char(value[start - 1]) {
                start -= 1;
            }
            while start < sep && !value[start].is_ascii_alphabetic() {
                start += 1;
            }
            let end = run(value, sep, |b| {
                !(b.is_ascii_whitespace() || b"\"'<>".contains(&b))
            });
            at = end.max(sep + 3);
            if start == sep {
                continue;
            }
            let Some(password) = crate::firmware::authority(&value[start..end])
                .and_then(|a| a.password)
                .map(|p| start + p.start..start + p.end)
            else {
                continue;
            };
            if !password.is_empty() && value[password.start] != b'$' {
                return Some(password);
            }
        }
    })
}

fn is_scheme_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+-.".contains(&b)
}

/// [`offer`] for an XML element or attribute name, judged by its local name: the phone reads
/// `<voip:AdminPIN>` and `ns:password="…"` as `AdminPIN` and `password`, while the prefix is
/// whatever the file's author chose (`spin:` must not make every name a PIN's). The name
/// reported is the one written, prefix and all.
fn offer_markup(line: &[u8], name: Range<usize>, value: Range<usize>, out: &mut Vec<Assignment>) {
    let Some(n) = line.get(name.clone()) else {
        return;
    };
    offer_judged(line, is_secret_name(local_name(n)), name, value, out);
}

/// What follows an XML name's namespace prefix (`Password` in `ns:Password`), or the whole
/// name when it has none.
fn local_name(name: &[u8]) -> &[u8] {
    name.rsplit(|&b| b == b':').next().unwrap_or(name)
}

/// The secret assignments of a trimmed line, in every form [`secret_lines`] reads line by line.
fn assignments(line: &[u8], out: &mut Vec<Assignment>) {
    if !set_statement(line, out) {
        key_value(line, out);
        spa_statements(line, out);
    }
    attributes(line, out);
    json_members(line, out);
    url_options(line, out);
    joined_pairs(line, out);
}

/// `name=value` pairs after an `&` (`P30=pbx.example&P34=secret&gnkey=0b82`): Grandstream's
/// legacy `cfg{mac}` file is its P-values joined this way behind a 16-byte header (the
/// format the Grandstream configuration tool writes; described with a worked header in
/// "Grandstream Configuration Tool", grandstreamht502.blogspot.com, 2015), and a URL's query
/// gives a password the same way (`?user=1001&pwd=…`, also as `&amp;` in XML). The first pair
/// of a line is the `name=value` form's; each later one is read here, its value running to the
/// next `&`. One pass over the line.
fn joined_pairs(line: &[u8], out: &mut Vec<Assignment>) {
    let mut at = 0;
    while let Some(amp) = find(line, at, b'&') {
        let mut name = amp + 1;
        if line.get(name..name + 4) == Some(b"amp;") {
            name += 4;
        }
        let name_end = run(line, name, is_name_char);
        at = name_end;
        if name_end == name || line.get(name_end) != Some(&b'=') {
            continue;
        }
        let value_end = find(line, name_end + 1, b'&').unwrap_or(line.len());
        offer(line, name..name_end, name_end + 1..value_end, out);
        at = value_end;
    }
}

/// Cisco's resync URL options, in a `Profile_Rule*` or `Upgrade_Rule` of any file: `--key`
/// gives the key that decrypts the profiles (`[--key "SecretPhrase1234"] http://…`) and `--pwd`
/// the password for the server (`[--uid admin --pwd x]https://…`). Whoever reads a common file
/// holding one decrypts every phone's profile, or fetches them. The value is quoted, or runs to
/// a blank or `]`; a macro (`$SA`, naming a `GPP_SA` that is itself a secret) gives none.
fn url_options(line: &[u8], out: &mut Vec<Assignment>) {
    let mut at = 0;
    while let Some(dash) = find(line, at, b'-') {
        at = dash + 1;
        if line.get(dash + 1) != Some(&b'-')
            || (dash > 0 && !(line[dash - 1] == b'[' || line[dash - 1].is_ascii_whitespace()))
        {
            continue;
        }
        let opt = dash + 2;
        let opt_end = opt
            + line[opt..]
                .iter()
                .take_while(|b| b.is_ascii_alphabetic())
                .count();
        at = opt_end;
        let option = &line[opt..opt_end];
        if !(option.eq_ignore_ascii_case(b"key") || option.eq_ignore_ascii_case(b"pwd")) {
            continue;
        }
        let blanks = line[opt_end..]
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        let from = opt_end + blanks;
        let value = match line.get(from) {
            _ if blanks == 0 => continue,
            Some(b'"') => match find(line, from + 1, b'"') {
                Some(close) => from + 1..close,
                None => continue,
            },
            _ => {
                let len = line[from..]
                    .iter()
                    .take_while(|b| !b.is_ascii_whitespace() && **b != b']')
                    .count();
                from..from + len
            }
        };
        at = value.end;
        let v = &line[value.clone()];
        if holds_value(v) && !v.starts_with(b"$") {
            out.push(Assignment::whole(dash..opt_end, value));
        }
    }
}

/// Where the string whose opening quote is just before `from` ends (its closing `"`), a
/// backslash escaping the byte after it.
fn string_end(line: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(&b) = line.get(i) {
        match b {
            b'"' => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// `"name": "value"` and `"name": value` anywhere in a line (JSON, also YAML's flow style), as
/// some phones and softphones take their configuration. One pass over the line's strings.
fn json_members(line: &[u8], out: &mut Vec<Assignment>) {
    let mut at = 0;
    while let Some(open) = find(line, at, b'"') {
        let Some(close) = string_end(line, open + 1) else {
            return;
        };
        at = close + 1;
        let colon = skip_blanks(line, close + 1);
        if line.get(colon) != Some(&b':') {
            continue;
        }
        let start = skip_blanks(line, colon + 1);
        let value = if line.get(start) == Some(&b'"') {
            let Some(end) = string_end(line, start + 1) else {
                return;
            };
            at = end + 1;
            start + 1..end
        } else {
            start..run(line, start, |b| !b",}] \t".contains(&b))
        };
        offer(line, open + 1..close, value, out);
    }
}

fn is_quote(b: u8) -> bool {
    b == b'"' || b == b'\''
}

/// Where the blanks from `at` end.
fn skip_blanks(line: &[u8], at: usize) -> usize {
    at + line
        .get(at..)
        .map_or(0, |rest| rest.len() - rest.trim_ascii_start().len())
}

/// Where the run of `accept` bytes from `at` ends.
fn run(line: &[u8], at: usize, accept: impl Fn(u8) -> bool) -> usize {
    at + line.get(at..).map_or(0, |rest| {
        rest.iter().position(|&b| !accept(b)).unwrap_or(rest.len())
    })
}

/// Where the next `byte` at or after `at` is.
fn find(line: &[u8], at: usize, byte: u8) -> Option<usize> {
    line.get(at..)?
        .iter()
        .position(|&b| b == byte)
        .map(|i| at + i)
}

/// The value that starts after the blanks from `at` and runs to the end of the line, or, when
/// it starts with a quote, to the matching quote (its content, without the quotes).
fn value_from(line: &[u8], at: usize) -> Range<usize> {
    let start = skip_blanks(line, at);
    match line.get(start) {
        Some(&q) if is_quote(q) => start + 1..find(line, start + 1, q).unwrap_or(line.len()),
        _ => start.min(line.len())..line.len(),
    }
}

/// `SET NAME value` (any case of SET, any blank after it). Returns whether the line is a SET
/// statement, whose name and value the other line forms must not read again.
fn set_statement(line: &[u8], out: &mut Vec<Assignment>) -> bool {
    let is_set = line
        .get(..3)
        .is_some_and(|k| k.eq_ignore_ascii_case(b"set"))
        && line.get(3).is_some_and(u8::is_ascii_whitespace);
    if is_set {
        let name = skip_blanks(line, 3);
        let end = run(line, name, |b| !b.is_ascii_whitespace());
        offer(line, name..end, value_from(line, end), out);
    }
    is_set
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._-".contains(&b)
}

/// A byte of an XML element or attribute name, which may carry a namespace prefix
/// (`ns:Password`).
fn is_markup_name_char(b: u8) -> bool {
    is_name_char(b) || b == b':'
}

/// `name = value`, `name: value`, `name=value`; the name is words of name characters and `[]`
/// separated by blanks, optionally followed by a Snom permission flag (`$`, `!` or `&`).
fn key_value(line: &[u8], out: &mut Vec<Assignment>) {
    let Some(at) = line.iter().position(|&b| b == b'=' || b == b':') else {
        return;
    };
    let mut name = line[..at].trim_ascii_end();
    if let Some((flag, before)) = name.split_last()
        && b"$!&".contains(flag)
    {
        name = before.trim_ascii_end();
    }
    let plain = !name.is_empty()
        && name
            .iter()
            .all(|&b| is_name_char(b) || b"[] \t".contains(&b));
    if plain {
        offer(line, 0..name.len(), value_from(line, at + 1), out);
    }
}

/// `Name "value";` and `Name ! "value";` (Cisco SPA legacy text; `!` and `?` set who may
/// change it), several to a line.
fn spa_statements(line: &[u8], out: &mut Vec<Assignment>) {
    let mut at = 0;
    loop {
        let name_end = run(line, at, |b| is_name_char(b) || b"[]".contains(&b));
        if name_end == at {
            return;
        }
        let mut quote = skip_blanks(line, name_end);
        if line.get(quote).is_some_and(|b| b"!?".contains(b)) {
            quote = skip_blanks(line, quote + 1);
        }
        if line.get(quote) != Some(&b'"') {
            return;
        }
        let Some(close) = find(line, quote + 1, b'"') else {
            return;
        };
        let semicolon = skip_blanks(line, close + 1);
        if line.get(semicolon) != Some(&b';') {
            return;
        }
        offer(line, at..name_end, quote + 1..close, out);
        at = skip_blanks(line, semicolon + 1);
    }
}

/// `name="value"` and `name='value'` anywhere in the line (XML attributes, also those of a
/// tag that spans lines). One pass: a name is looked for only back to the end of what was
/// read before, a quoted value is skipped whole, and a quote found unclosed is not looked for
/// again.
fn attributes(line: &[u8], out: &mut Vec<Assignment>) {
    let mut floor = 0;
    let mut unclosed = [false; 2];
    let mut i = 0;
    while let Some(eq) = find(line, i, b'=') {
        let name_end = floor + line[floor..eq].trim_ascii_end().len();
        let mut name_start = name_end;
        while name_start > floor && is_markup_name_char(line[name_start - 1]) {
            name_start -= 1;
        }
        floor = eq + 1;
        i = eq + 1;
        let open = skip_blanks(line, eq + 1);
        let Some(&q) = line.get(open) else {
            return;
        };
        let kind = usize::from(q == b'\'');
        if name_start == name_end || !is_quote(q) || unclosed[kind] {
            continue;
        }
        match find(line, open + 1, q) {
            Some(close) => {
                offer_markup(line, name_start..name_end, open + 1..close, out);
                i = close + 1;
                floor = i;
            }
            None => unclosed[kind] = true,
        }
    }
}

/// Where the next `seq` at or after `at` starts.
fn find_seq(line: &[u8], at: usize, seq: &[u8]) -> Option<usize> {
    line.get(at..)?
        .windows(seq.len())
        .position(|w| w == seq)
        .map(|i| at + i)
}

/// An element whose open tag has been read, waiting for the text up to the next `<`.
struct Open {
    name: Range<usize>,
    text: usize,
    /// The `name`, `id` or `key` attribute's value, when there is no `value` attribute.
    key: Option<Range<usize>>,
    /// The keyed element it is written in (`<item name="account.1.sip">` for one of its
    /// `<part>`s), whose key names the setting together with its own name.
    within: Option<Keyed>,
}

/// A keyed element whose children are being read: its tag's name, to know its end, its key,
/// and what the key's words say, read once for all its children.
#[derive(Clone)]
struct Keyed {
    tag: Range<usize>,
    key: Range<usize>,
    words: Words,
}

/// How reading a tag ended.
enum TagEnd {
    /// `>`: its text starts here.
    Open(usize),
    /// `/>`, or a byte that cannot be in a tag (so there is no text to wait for): reading goes
    /// on from here.
    Done(usize),
}

/// `<name …>value</name>` and keyed elements (`<item name="…">value</item>`,
/// `<setting id="…" value="…"/>`), read in `line`, which [`secret_lines`] gives the whole
/// file (line ends are blanks here). An element's value is its text up to the next `<`, read
/// when that `<` closes it, so no text is searched twice.
///
/// A keyed element may hold its value in child elements instead, as Grandstream's version-2
/// XML does (`<item name="account.1.sip"><part name="password">…</part></item>`, the item
/// naming the setting, each part one field of it; seen in Grandstream GDMS templates and
/// GRP26xx provisioning files). A child's value counts when its own name says secret or when
/// the innermost keyed element's key and its name together do (`<item
/// name="users.admin.password">` with `<part name="1">` or `<value>`), so a password written
/// one level down is not missed for its child's plain name.
fn elements(line: &[u8], out: &mut Vec<Assignment>) {
    let mut open: Option<Open> = None;
    // The keyed elements open around the reading point, innermost last.
    let mut keyed: Vec<Keyed> = Vec::new();
    let mut unclosed = [false; 2];
    let mut i = 0;
    while let Some(lt) = find(line, i, b'<') {
        let element = open.take();
        let markup = &line[lt..];
        if element.is_some() && markup.starts_with(b"<!--") {
            // A comment inside an element's text: the text goes on after it. (Other comments
            // are read like any text, the safe side.)
            let Some(end) = find_seq(line, lt + 4, b"-->") else {
                return;
            };
            i = end + 3;
            open = element.map(|e| Open { text: i, ..e });
            continue;
        }
        if markup.starts_with(b"<![CDATA[") {
            // The text of a CDATA section is the element's value, `<` and all.
            let text = lt + 9;
            let end = find_seq(line, text, b"]]>").unwrap_or(line.len());
            if let Some(element) = element {
                offer_element(line, element, trimmed(line, text..end), out);
            }
            i = end;
            continue;
        }
        if line.get(lt + 1) == Some(&b'/') {
            let name_end = run(line, lt + 2, is_markup_name_char);
            if let Some(element) = element
                && name_end > lt + 2
                && line.get(element.name.clone()) == line.get(lt + 2..name_end)
            {
                let text = trimmed(line, element.text..lt);
                offer_element(line, element, text, out);
            }
            if keyed
                .last()
                .is_some_and(|k| line.get(k.tag.clone()) == line.get(lt + 2..name_end))
            {
                keyed.pop();
            }
            i = name_end;
            continue;
        }
        let name = lt + 1..run(line, lt + 1, is_markup_name_char);
        if name.is_empty() {
            i = lt + 1;
            continue;
        }
        let (key, end) = tag(line, name.end, &mut unclosed, out);
        i = match end {
            TagEnd::Open(text) => {
                let within = keyed.last().cloned();
                if let Some(key) = &key {
                    keyed.push(Keyed {
                        tag: name.clone(),
                        key: key.clone(),
                        words: Words::of(&line[key.clone()]),
                    });
                }
                open = Some(Open {
                    name,
                    text,
                    key,
                    within,
                });
                text
            }
            TagEnd::Done(at) => at,
        };
    }
}

/// Offers an element's value under its name, its key, and the key of the keyed element it is
/// written in joined to its own name or key (reported under that outer key).
fn offer_element(line: &[u8], element: Open, value: Range<usize>, out: &mut Vec<Assignment>) {
    let before = out.len();
    offer_markup(line, element.name.clone(), value.clone(), out);
    if let Some(key) = element.key.clone() {
        offer(line, key, value.clone(), out);
    }
    if let Some(within) = element.within {
        let own = match &element.key {
            Some(key) => &line[key.clone()],
            None => local_name(&line[element.name]),
        };
        if out[before..].iter().all(|a| a.in_url)
            && line.get(value.clone()).is_some_and(holds_value)
            && within.words.then(own).say_secret()
        {
            out.push(Assignment::whole(within.key, value));
        }
    }
}

/// Reads a tag's attributes from `at`; offers a keyed element's `value` attribute, and returns
/// its key when its value is to come from its text.
fn tag(
    line: &[u8],
    mut at: usize,
    unclosed: &mut [bool; 2],
    out: &mut Vec<Assignment>,
) -> (Option<Range<usize>>, TagEnd) {
    let mut key = None;
    let mut value = None;
    let end = loop {
        at = skip_blanks(line, at);
        match line.get(at) {
            Some(b'>') => break TagEnd::Open(at + 1),
            Some(b'/') if line.get(at + 1) == Some(&b'>') => break TagEnd::Done(at + 2),
            Some(&b) if is_markup_name_char(b) => {
                let attr = at..run(line, at, is_markup_name_char);
                let eq = skip_blanks(line, attr.end);
                if line.get(eq) != Some(&b'=') {
                    break TagEnd::Done(eq);
                }
                let open = skip_blanks(line, eq + 1);
                let Some(&q) = line.get(open).filter(|&&q| is_quote(q)) else {
                    break TagEnd::Done(open);
                };
                let kind = usize::from(q == b'\'');
                let close = if unclosed[kind] {
                    None
                } else {
                    find(line, open + 1, q)
                };
                let Some(close) = close else {
                    unclosed[kind] = true;
                    break TagEnd::Done(open + 1);
                };
                // Read here as well as line by line: XML allows line ends around the `=`
                // (`reg.1.auth.password` on one line, `="…"` on the next).
                offer_markup(line, attr.clone(), open + 1..close, out);
                let attr_name = local_name(&line[attr]);
                if [b"name".as_slice(), b"id", b"key"]
                    .iter()
                    .any(|k| attr_name.eq_ignore_ascii_case(k))
                {
                    key = Some(open + 1..close);
                } else if attr_name.eq_ignore_ascii_case(b"value") {
                    value = Some(open + 1..close);
                }
                at = close + 1;
            }
            _ => break TagEnd::Done(at),
        }
    };
    match (key, value) {
        (Some(key), Some(value)) => {
            offer(line, key, value, out);
            (None, end)
        }
        (key, _) => (key, end),
    }
}

/// The range without blanks at either end.
fn trimmed(line: &[u8], range: Range<usize>) -> Range<usize> {
    let Some(text) = line.get(range.clone()) else {
        return range.start..range.start;
    };
    let start = range.start + (text.len() - text.trim_ascii_start().len());
    start..start + text.trim_ascii().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_in_lf_crlf_or_cr_alone() {
        for (text, line) in [
            ("SET A 1\nSET ADMIN_PASSWORD 27238\n", 2),
            ("SET A 1\r\nSET ADMIN_PASSWORD 27238\r\n", 2),
            ("SET A 1\rSET B 2\rSET ADMIN_PASSWORD 27238\r", 3),
        ] {
            let found = secret_lines(text.as_bytes());
            assert_eq!(found.len(), 1, "{text:?}");
            assert_eq!(found[0].line, line, "{text:?}");
            assert_eq!(&text.as_bytes()[found[0].value.clone()], b"27238");
        }
    }
    use proptest::prelude::*;

    fn names(text: &str) -> Vec<(usize, String)> {
        secret_lines(text.as_bytes())
            .into_iter()
            .map(|s| (s.line, s.name))
            .collect()
    }

    /// (name, value) of every secret found, the value as the bytes its range points at.
    fn values(text: &str) -> Vec<(String, String)> {
        secret_lines(text.as_bytes())
            .into_iter()
            .map(|s| (s.name, text[s.value].to_string()))
            .collect()
    }

    /// The phone joins a quoted value that runs over line ends: the password on the line after
    /// the opening quote, or split across lines, is a secret like any other, masked whole.
    #[test]
    fn a_quoted_value_continued_on_later_lines_is_read_and_masked_whole() {
        let text = "SET A 1\nSET FORCE_SIP_PASSWORD \"\nhunter2\"\n\
                    SET\tADMIN_PASSWORD\t\"\r\n99\r\n99\"\r\nSET B 2\n";
        assert_eq!(
            values(text),
            pairs(&[
                ("FORCE_SIP_PASSWORD", "\nhunter2"),
                ("ADMIN_PASSWORD", "\r\n99\r\n99")
            ])
        );
        assert_eq!(
            names(text),
            [
                (2, "FORCE_SIP_PASSWORD".into()),
                (4, "ADMIN_PASSWORD".into())
            ]
        );
        assert_eq!(
            mask_secrets(text.as_bytes(), "***"),
            b"SET A 1\nSET FORCE_SIP_PASSWORD \"***\"\nSET\tADMIN_PASSWORD\t\"***\"\r\nSET B 2\n"
        );
    }

    /// XML allows blanks and line ends around an attribute's `=`; an element's text may be a
    /// CDATA section or follow a comment. Each is read, at the line where its value starts.
    #[test]
    fn xml_attributes_over_lines_cdata_and_comments_are_read() {
        let text = "<polycomConfig>\n<reg reg.1.address=\"201\"\n  reg.1.auth.password\n\
                    =\"s1\"\n  device.auth.localAdminPassword=\n'4567'/>\n\
                    <Password_1_><![CDATA[ s<2> ]]></Password_1_>\n\
                    <Admin_Passwd_><!-- set by hand -->s3</Admin_Passwd_>\n</polycomConfig>\n";
        assert_eq!(
            values(text),
            pairs(&[
                ("reg.1.auth.password", "s1"),
                ("device.auth.localAdminPassword", "4567"),
                ("Password_1_", "s<2>"),
                ("Admin_Passwd_", "s3"),
            ])
        );
        assert_eq!(
            names(text).iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            [4, 6, 7, 8]
        );
    }

    /// A namespace prefix is the file author's choice: `<ns:Password>` and `ns:password="…"`
    /// are a password's, in every element form, and a prefix that happens to end in `pin`
    /// makes nothing a secret.
    #[test]
    fn prefixed_elements_and_attributes_are_judged_by_their_local_name() {
        let text = "<voip:config xmlns:voip=\"urn:x\">\n\
                    <ns:Password>secret</ns:Password>\n\
                    <voip:AdminPIN><![CDATA[4711]]></voip:AdminPIN>\n\
                    <reg ns:password\n=\"s1\" ns:address=\"201\"/>\n\
                    <g:item g:name=\"P34\">s2</g:item>\n\
                    <spin:Label>lobby</spin:Label>\n</voip:config>\n";
        assert_eq!(
            values(text),
            pairs(&[
                ("ns:Password", "secret"),
                ("voip:AdminPIN", "4711"),
                ("ns:password", "s1"),
                ("P34", "s2"),
            ])
        );
        assert!(mask_secrets(text.as_bytes(), "*").starts_with(
            b"<voip:config xmlns:voip=\"urn:x\">\n<ns:Password>*</ns:Password>\n\
                  <voip:AdminPIN><![CDATA[*]]></voip:AdminPIN>\n<reg ns:password\n=\"*\""
        ));
    }

    /// JSON names its settings in quotes, one to a line or several in one object.
    #[test]
    fn json_members_are_read() {
        let text = "{\n  \"sipPassword\": \"hunter2\",\n  \"server\": \"pbx\",\n\
                    \"account\": {\"note\": \"a \\\"b\\\" c\", \"voicemail_pin\": 4711}}\n";
        assert_eq!(
            values(text),
            pairs(&[("sipPassword", "hunter2"), ("voicemail_pin", "4711")])
        );
        assert_eq!(
            mask_secrets(text.as_bytes(), "*"),
            "{\n  \"sipPassword\": \"*\",\n  \"server\": \"pbx\",\n\
             \"account\": {\"note\": \"a \\\"b\\\" c\", \"voicemail_pin\": *}}\n"
                .as_bytes()
        );
    }

    /// Credentials that are no password by name: the AES keys that decrypt Yealink's
    /// provisioning files, Poly's configuration encryption key, a VPN or API key, SIP
    /// authentication tokens, SNMP communities (SNMP's password), Snom's digest hash and keypad
    /// unlock code. Each vendor's form, in a file as an operator uploads it.
    #[test]
    fn keys_tokens_communities_and_hashes_are_secrets() {
        let text = "\
static.auto_provision.aes_key_16.mac = 0123456789abcdef
static.auto_provision.aes_key_16.com = fedcba9876543210
static.snmp.community = snmp-c
phone_setting.phone_lock.unlock_pin = 1357
<device device.sec.configEncryption.key=\"poly-k\" device.snmp.communityName=\"poly-c\"/>
<SIP_Auth_Token_1_ ua=\"na\">cisco-t</SIP_Auth_Token_1_>
SET SIP_TOKEN avaya-t
SET SNMPSTRING avaya-c
<user_hash idx=\"1\" perm=\"\">5f4dcc3b5aa765d6</user_hash>
user_hash2$: 0d107d09f5bbe40c
keyboard_lock_pw!: 2468
openvpn.key = vpn-k
{\"apiKey\": \"api-k\", \"privateKey\": \"priv-k\", \"pwd_hash\": \"h\"}
";
        assert_eq!(
            values(text),
            pairs(&[
                ("static.auto_provision.aes_key_16.mac", "0123456789abcdef"),
                ("static.auto_provision.aes_key_16.com", "fedcba9876543210"),
                ("static.snmp.community", "snmp-c"),
                ("phone_setting.phone_lock.unlock_pin", "1357"),
                ("device.sec.configEncryption.key", "poly-k"),
                ("device.snmp.communityName", "poly-c"),
                ("SIP_Auth_Token_1_", "cisco-t"),
                ("SIP_TOKEN", "avaya-t"),
                ("SNMPSTRING", "avaya-c"),
                ("user_hash", "5f4dcc3b5aa765d6"),
                ("user_hash2", "0d107d09f5bbe40c"),
                ("keyboard_lock_pw", "2468"),
                ("openvpn.key", "vpn-k"),
                ("apiKey", "api-k"),
                ("privateKey", "priv-k"),
                ("pwd_hash", "h"),
            ])
        );
    }

    /// Real settings whose names hold `key`, `token`-like or `hash`-like words without being
    /// credentials: buttons, keypads, soft keys, dial plans, switches about a key. A common file
    /// judged secret goes only to proven devices, so phones without a certificate would lose
    /// these; each is judged by its name alone here (a value of `1` would hide a wrong rule).
    #[test]
    fn buttons_keypads_and_other_lookalikes_are_not_secrets() {
        for name in [
            // Yealink
            "linekey.1.type",
            "linekey.1.value",
            "linekey.1.label",
            "programablekey.2.type",
            "memorykey.1.value",
            "expansion_module.1.key.1.value",
            "features.key_as_send",
            "features.key_tone",
            "phone_setting.keypad_lock.enable",
            "phone_setting.keypad_lock.type",
            "dialplan.replace.prefix.1",
            "transfer.dsskey_deal_type",
            "static.auto_provision.aes_key_in_file",
            "static.auto_provision.server.url",
            "static.auto_provision.user_name",
            "static.network.snmp.enable",
            "static.network.snmp.trust_ip",
            "account.1.auth_name",
            "account.1.srtp_encryption",
            // Poly
            "key.scrolling.timeout",
            "softkey.1.label",
            "softkey.1.action",
            "efk.efklist.1.mname",
            "efk.efkprompt.1.label",
            "feature.enhancedFeatureKeys.enabled",
            "sec.srtp.key.lifetime",
            "device.prov.serverName",
            "reg.1.auth.userId",
            // Avaya (from the field files, and names of their form)
            "SOFTKEY_CONFIGURATION",
            "POUND_KEY_AS_CALL_TRIGGER",
            "PHONEKEY",
            "KEYPAD_LOCK",
            "SIG",
            "SIG_PORT_LOW",
            "SIPSIGNAL",
            "HOLIDAY_LIST",
            "MEDIAENCRYPTION",
            "ENCRYPT_SRTCP",
            "SNMPADD",
            // Snom
            "fkey1",
            "keyboard_lock",
            "keyboard_lock_emergency",
            "dkey_hold",
            "user_realname1",
            // Cisco
            "Profile_Rule",
            "Programmable_Softkey_Enable",
            "Extension_1_",
            "Auth_Resync_Reboot",
        ] {
            assert!(!secret_name(name), "{name}");
        }
        let lines = "\
linekey.1.value = 1001
expansion_module.1.key.1.value = 2002
memorykey.1.value = 3003
programablekey.2.type = 30
dialplan.replace.prefix.1 = 0049
<key key.scrolling.timeout=\"5\" softkey.1.label=\"Park\" efk.efklist.1.mname=\"park\"/>
SET SIG 2
SET SOFTKEY_CONFIGURATION 0,1,2
fkey1: dest <sip:100@pbx>
";
        assert_eq!(names(lines), []);
    }

    /// A login in a URL is the provisioning server's password, whatever the setting's name:
    /// Yealink's server URL, Poly's `device.prov.serverName` (here the factory FTP login, which
    /// still opens the server), Cisco's `Profile_Rule` after its `--key`. Only the password is
    /// masked; the user and host still tell the operator where it leads.
    #[test]
    fn logins_in_urls_are_secrets_whatever_the_name() {
        let text = "\
static.auto_provision.server.url = https://prov:Hunter2pw@host/
<device device.prov.serverName=\"ftp://PlcmSpIp:PlcmSpIp@host\"/>
<Profile_Rule>[--key \"k1\"] https://admin:Pa55@host/$MA.cfg</Profile_Rule>
SET BRURI \"http://u:p%40ss@192.0.2.1/backup\"
";
        let found = secret_lines(text.as_bytes());
        let shown: Vec<_> = found
            .iter()
            .map(|s| (s.line, s.name.as_str(), &text[s.value.clone()], s.in_url))
            .collect();
        assert_eq!(
            shown,
            [
                (1, "static.auto_provision.server.url", "Hunter2pw", true),
                (2, "device.prov.serverName", "PlcmSpIp", true),
                (3, "--key", "k1", false),
                (3, "Profile_Rule", "Pa55", true),
                (4, "BRURI", "p%40ss", true),
            ]
        );
        assert_eq!(
            String::from_utf8(mask_secrets(text.as_bytes(), "***")).unwrap(),
            "\
static.auto_provision.server.url = https://prov:***@host/
<device device.prov.serverName=\"ftp://PlcmSpIp:***@host\"/>
<Profile_Rule>[--key \"***\"] https://admin:***@host/$MA.cfg</Profile_Rule>
SET BRURI \"http://u:***@192.0.2.1/backup\"
"
        );
        // A password's value found whole is not reported again for the login inside it.
        assert_eq!(
            values("account.1.password = https://u:p@host/\n"),
            pairs(&[("account.1.password", "https://u:p@host/")])
        );
    }

    /// URLs without a password: no login, a lone user, a macro the phone fills in, an `@` in
    /// the path or query, a SIP URI (no `//`).
    #[test]
    fn urls_without_a_password_are_not_secrets() {
        let text = "\
static.auto_provision.server.url = https://host/prov/
static.firmware.url = ftp://anonymous@host/fw.rom
device.prov.serverName = http://$MAC:$PWD@host
<Profile_Rule>https://host/a@b.cfg?x=u:p@y</Profile_Rule>
account.1.sip_server.1.address = sip:100:x@pbx
static.auto_provision.server.url = https://:@host/
odd = ://u:p@host
";
        assert_eq!(names(text), []);
    }

    /// A pre-shared key opens the network to whoever reads it.
    #[test]
    fn pre_shared_keys_are_read() {
        let text = "<x device.wifi.psk.key=\"wifi-key\" device.wifi.ssid=\"lobby\"/>\n\
                    SET WPA2PSK \"vpn key\"\nstatic.wifi.1.psk = k3\n";
        assert_eq!(
            values(text),
            pairs(&[
                ("device.wifi.psk.key", "wifi-key"),
                ("WPA2PSK", "vpn key"),
                ("static.wifi.1.psk", "k3")
            ])
        );
    }

    /// The evaluator reads a quoted name without its quotes, and the value right after it.
    #[test]
    fn a_quoted_name_is_read() {
        assert_eq!(
            values("SET \"ADMIN_PASSWORD\"1234\n"),
            pairs(&[("ADMIN_PASSWORD", "1234")])
        );
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// Cisco keeps provisioning keys in GPP_SA–GPP_SD and in resync URL options: the key that
    /// decrypts every profile and the server's password, in a common file, are secrets. A
    /// macro naming the key (`$SA`) and text that only looks like an option are not.
    #[test]
    fn cisco_resync_keys_and_special_purpose_parameters_are_read() {
        let text = "<flat-profile>
<Profile_Rule ua=\"na\">[--key \"SecretPhrase1234\"] http://prov/spa$MA.cfg</Profile_Rule>
<Profile_Rule_B ua=\"na\">[--uid admin --pwd s3cr3t]https://prov/b.xml</Profile_Rule_B>
<Profile_Rule_C ua=\"na\">[--key $SA]http://prov/c.cfg</Profile_Rule_C>
<Profile_Rule_D ua=\"na\">( $PN == CP-8841-3PCC )? [--key k2 ] http://prov/d.cfg</Profile_Rule_D>
<GPP_SA ua=\"na\">aeskey</GPP_SA>
<GPP_A ua=\"na\">public</GPP_A>
<Upgrade_Rule ua=\"na\">http://prov/a--key.bin</Upgrade_Rule>
Profile_Rule \"[--pwd legacy] tftp://prov/x.cfg\";
GPP_SD \"legacykey\";
</flat-profile>
";
        assert_eq!(
            values(text),
            pairs(&[
                ("--key", "SecretPhrase1234"),
                ("--pwd", "s3cr3t"),
                ("--key", "k2"),
                ("GPP_SA", "aeskey"),
                ("--pwd", "legacy"),
                ("GPP_SD", "legacykey"),
            ])
        );
        let masked = String::from_utf8(mask_secrets(text.as_bytes(), "***")).unwrap();
        for secret in ["SecretPhrase1234", "s3cr3t", "k2 ", "aeskey", "legacy"] {
            assert!(!masked.contains(secret), "{secret}: {masked}");
        }
        assert!(masked.contains("[--key $SA]"), "{masked}");
    }

    #[test]
    fn every_vendor_form_is_read() {
        let text = "\
SET SIPDOMAIN example.com
SET FORCE_SIP_PASSWORD \"SIPPassword\"
set admin_password 27238
SET PROCPSWD 1234
account.1.password = s3cret
static.security.user_password = admin:pw
<reg reg.1.auth.password=\"x1\" reg.1.address=\"100\"/>
<Password_1_ ua=\"na\">hunter2</Password_1_>
<user_pass idx=\"1\" perm=\"\">abc</user_pass>
http_pass: topsecret
lock.pin = 4711
";
        assert_eq!(
            names(text),
            [
                (2, "FORCE_SIP_PASSWORD".to_string()),
                (3, "admin_password".into()),
                (4, "PROCPSWD".into()),
                (5, "account.1.password".into()),
                (6, "static.security.user_password".into()),
                (7, "reg.1.auth.password".into()),
                (8, "Password_1_".into()),
                (9, "user_pass".into()),
                (10, "http_pass".into()),
                (11, "lock.pin".into()),
            ]
        );
    }

    #[test]
    fn switches_empty_values_comments_and_lookalikes_are_not_secrets() {
        let text = "\
SET PRESERVE_LOGIN_PASSWORD 1
SET FORCE_SIP_PASSWORD \"\"
## SET ADMIN_PASSWORD 1234
# account.1.password = x
; password = x
// password = x
SET PING_INTERVAL 30
SET SPINNER 5
account.1.password =
<reg reg.1.auth.password=\"\"/>
<Password_1_ ua=\"na\"></Password_1_>
SET ENABLE_PASSWORD_SAVE off
SET SIPDOMAIN passage.example
bypass = 7
";
        assert_eq!(names(text), []);
    }

    #[test]
    fn grandstream_password_p_values_are_read_in_every_form() {
        let text = "\
P2 = admin123
P34 = sippass
P196=enduser
<P406>two</P406>
P506 = three
<P606>four</P606>
P1706 = five
P1806=six
<P1359>xmlkey</P1359>
P3 = Reception
P35 = 1001
<P47>pbx.example</P47>
P271 = 1
";
        assert_eq!(
            values(text),
            pairs(&[
                ("P2", "admin123"),
                ("P34", "sippass"),
                ("P196", "enduser"),
                ("P406", "two"),
                ("P506", "three"),
                ("P606", "four"),
                ("P1706", "five"),
                ("P1806", "six"),
                ("P1359", "xmlkey"),
            ])
        );
    }

    #[test]
    fn snom_permission_flags_and_indexed_pass_names_are_read() {
        let text = "\
user_pass1$: a1
user_pass2!: a2
admin_mode_password!: a3
http_pass&: a4
user_pass3&: off
";
        assert_eq!(
            values(text),
            pairs(&[
                ("user_pass1", "a1"),
                ("user_pass2", "a2"),
                ("admin_mode_password", "a3"),
                ("http_pass", "a4"),
            ])
        );
    }

    /// A pretty-printer puts an element's text, or the attributes of its open tag, on lines of
    /// their own; the value is reported at the line where it starts, and masked.
    #[test]
    fn an_element_written_over_several_lines_is_read() {
        let text = "<flat-profile>\r\n  <Display_Name_1_>Ann</Display_Name_1_>\r\n  \
                    <Password_1_ ua=\"na\">\r\n    hunter2\r\n  </Password_1_>\r\n  \
                    <Admin_Passwd_\r\n      ua=\"na\">s3cret</Admin_Passwd_>\r\n  \
                    <item name=\"account.1.password\">\n\n  pw9\n</item>\n\
                    <Voice_Mail_PIN_1_>\n</Voice_Mail_PIN_1_>\n</flat-profile>\n";
        let found = secret_lines(text.as_bytes());
        let seen: Vec<(usize, &str, &str)> = found
            .iter()
            .map(|s| (s.line, s.name.as_str(), &text[s.value.clone()]))
            .collect();
        assert_eq!(
            seen,
            [
                (4, "Password_1_", "hunter2"),
                (7, "Admin_Passwd_", "s3cret"),
                (10, "account.1.password", "pw9"),
            ]
        );
        let masked = String::from_utf8(mask_secrets(text.as_bytes(), "*")).unwrap();
        assert!(masked.contains("<Password_1_ ua=\"na\">\r\n    *\r\n  </Password_1_>"));
        assert!(
            !["hunter2", "s3cret", "pw9"]
                .iter()
                .any(|v| masked.contains(v))
        );
        assert!(masked.contains("Ann"));
    }

    #[test]
    fn an_element_keyed_by_an_attribute_is_read() {
        let text = "\
<item name=\"account.1.sip.password\">k1</item>
<setting id=\"password\" value=\"k2\"/>
<setting key=\"admin.pwd\" value='k3'>
<part name=\"password\">k4</part>
<item name=\"account.1.sip.userid\">1001</item>
<setting id=\"password\" value=\"\"/>
<item name=\"users.admin.password\"></item>
<setting id=\"password.length\" value=\"8\"/>
";
        assert_eq!(
            values(text),
            pairs(&[
                ("account.1.sip.password", "k1"),
                ("password", "k2"),
                ("admin.pwd", "k3"),
                ("password", "k4"),
            ])
        );
    }

    /// Grandstream's version-2 XML names a setting by an item and each field by a part; a
    /// password one level down is read whether the part or the item says so, and a part of an
    /// item about something else is not.
    #[test]
    fn a_keyed_elements_value_in_its_children_is_read() {
        let text = "\
<gs_provision version=\"1\">
<config version=\"2\">
<item name=\"account.1.sip\">
  <part name=\"userId\">1001</part>
  <part name=\"password\">g1</part>
</item>
<item name=\"users.admin.password\"><value>g2</value></item>
<item name=\"network.8021x.password\">
  <part name=\"1\">g3</part>
  <part name=\"2\"><![CDATA[g4]]></part>
</item>
<item name=\"account.1.codec.choice\"><part name=\"1\">PCMA</part></item>
<item name=\"users.admin.password\"><part name=\"minLength\">8</part></item>
<item name=\"dateTime.ntp.server\"><part name=\"1\">ntp.example</part></item>
<P34>g5</P34>
</config>
</gs_provision>
";
        assert_eq!(
            values(text),
            pairs(&[
                ("password", "g1"),
                ("users.admin.password", "g2"),
                ("network.8021x.password", "g3"),
                ("network.8021x.password", "g4"),
                ("P34", "g5"),
            ])
        );
    }

    /// The legacy `cfg{mac}` joins P-values with `&`; a password after the first pair, and one
    /// in a URL's query, is read; `&` inside a value of the `name = value` form stays its own.
    #[test]
    fn pairs_joined_by_ampersands_are_read() {
        let text = "\
P30=time.example&P34=j1&P35=1001&gnkey=0b82
P2=j2&P3=Reception
url = https://prov.example/cfg?user=1001&amp;pwd=j3
account.1.password = j4&more
label = a&b=c
";
        assert_eq!(
            values(text),
            pairs(&[
                ("P34", "j1"),
                ("P2", "j2&P3=Reception"),
                ("pwd", "j3"),
                ("account.1.password", "j4&more"),
            ])
        );
    }

    #[test]
    fn names_of_several_words_before_a_colon_are_read() {
        let text = "\
sip line1 password: w1
admin password: w2
SIP1 Register Pswd   :w3
sip line1 auth name: 1001
";
        assert_eq!(
            values(text),
            pairs(&[
                ("sip line1 password", "w1"),
                ("admin password", "w2"),
                ("SIP1 Register Pswd", "w3"),
            ])
        );
    }

    #[test]
    fn pins_with_an_index_are_read() {
        let text = "\
voicemail.pin.1 = 1234
<Voice_Mail_PIN_1_>5678</Voice_Mail_PIN_1_>
";
        assert_eq!(
            values(text),
            pairs(&[("voicemail.pin.1", "1234"), ("Voice_Mail_PIN_1_", "5678")])
        );
    }

    #[test]
    fn set_with_a_tab_a_byte_order_mark_and_spa_statements_are_read() {
        let text = "\u{FEFF}account.1.password = b1
SET\tSIP_PASSWORD b2
Admin_Passwd \"b3\";
User_Password ! \"b4\"; Line_Enable[1] \"Yes\"; Password[2] ? \"b5\" ;
Admin_Passwd \"\";
";
        assert_eq!(
            names(text),
            [
                (1, "account.1.password".to_string()),
                (2, "SIP_PASSWORD".into()),
                (3, "Admin_Passwd".into()),
                (4, "User_Password".into()),
                (4, "Password[2]".into()),
            ]
        );
        assert_eq!(
            values(text).into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            ["b1", "b2", "b3", "b4", "b5"]
        );
    }

    #[test]
    fn settings_about_a_secret_are_not_secrets() {
        let text = "\
features.password_dial.prefix = *
features.password_dial.length = 4
account.1.password = %NULL%
<sec sec.pwd.length.admin=\"8\" sec.pwd.length.user=\"4\"/>
SET PRESERVE_LOGIN_PASSWORD 1
SET ENABLE_PASSWORD_SAVE off
min_password_length = 8
password_max_age = 90
lock.pin.timeout = 30
phone_lock.pin_retry = 3
passwordLength = 12
security.password.hint = your dog
pwdlen = 6
SET PASSWORD_EXPIRES 30
password_policy = strong
";
        assert_eq!(names(text), []);
    }

    #[test]
    fn each_assignment_of_a_line_is_reported_once() {
        let text =
            "<reg reg.1.auth.password=\"m1\" reg.1.address=\"100\" reg.2.auth.password='m2'/>
  reg.3.auth.password=\"m3\" reg.4.auth.password=\"m4\"
account.1.password = \"m5\"
";
        assert_eq!(
            secret_lines(text.as_bytes())
                .into_iter()
                .map(|s| (s.line, s.name, text[s.value].to_string()))
                .collect::<Vec<_>>(),
            [
                (1, "reg.1.auth.password".to_string(), "m1".to_string()),
                (1, "reg.2.auth.password".into(), "m2".into()),
                (2, "reg.3.auth.password".into(), "m3".into()),
                (2, "reg.4.auth.password".into(), "m4".into()),
                (3, "account.1.password".into(), "m5".into()),
            ]
        );
    }

    #[test]
    fn the_field_file_with_a_sip_password_is_found() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/opensip-j100.46xxsettings.txt"
        );
        let bytes = std::fs::read(path).unwrap();
        let found = secret_lines(&bytes);
        assert_eq!(
            found.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["FORCE_SIP_PASSWORD"]
        );
        assert_eq!(&bytes[found[0].value.clone()], b"SIPPassword");
        for clean in [
            "sip-9600.46xxsettings.txt",
            "ipo11-autogen-b.46xxsettings.txt",
        ] {
            let path = format!("{}/../shared/fixtures/{clean}", env!("CARGO_MANIFEST_DIR"));
            assert_eq!(secret_lines(&std::fs::read(path).unwrap()), [], "{clean}");
        }
    }

    #[test]
    fn masking_replaces_the_values_and_nothing_else() {
        let text = "\u{FEFF}SET FORCE_SIP_PASSWORD \"SIPPassword\"\r
SET SIPDOMAIN example.com\r
account.1.password = s3cret
account.2.password = %NULL%
user_pass1$: snom
<reg reg.1.auth.password=\"x1\" reg.1.address=\"100\"/>
<Password_1_ ua=\"na\"> hunter2 </Password_1_>
<item name=\"account.1.sip.password\">gs</item><setting id=\"pin\" value='4711'/>
Admin_Passwd ! \"spa\";
P34 = gspass
# account.3.password = commented
";
        let expected = "\u{FEFF}SET FORCE_SIP_PASSWORD \"***\"\r
SET SIPDOMAIN example.com\r
account.1.password = ***
account.2.password = %NULL%
user_pass1$: ***
<reg reg.1.auth.password=\"***\" reg.1.address=\"100\"/>
<Password_1_ ua=\"na\"> *** </Password_1_>
<item name=\"account.1.sip.password\">***</item><setting id=\"pin\" value='***'/>
Admin_Passwd ! \"***\";
P34 = ***
# account.3.password = commented
";
        assert_eq!(
            String::from_utf8(mask_secrets(text.as_bytes(), "***")).unwrap(),
            expected
        );
    }

    /// A file saved as UTF-16 (Windows editors' "Unicode"; XML parsers must read it, so a Poly
    /// phone reads such a cfg) holds its password in two-byte units, which a reading of bytes
    /// never sees: it is read as its text, with or without a byte order mark, in either order.
    #[test]
    fn a_utf16_file_is_read_as_its_text() {
        let utf16 = |text: &str, big: bool, bom: bool| -> Vec<u8> {
            let units = bom.then_some(0xFEFF).into_iter().chain(text.encode_utf16());
            units
                .flat_map(|u| {
                    if big {
                        u.to_be_bytes()
                    } else {
                        u.to_le_bytes()
                    }
                })
                .collect()
        };
        let text = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r
<polycomConfig reg.1.label=\"Caf\u{e9} \u{1F600}\" reg.1.auth.password=\"hunter2\"/>\r
SET ADMIN_PASSWORD 1234\r
";
        let masked = text.replace("hunter2", "***").replace("1234", "***");
        for (big, bom) in [(false, true), (true, true), (false, false), (true, false)] {
            let bytes = utf16(text, big, bom);
            let found = secret_lines(&bytes);
            let shown: Vec<(usize, &str, String)> = found
                .iter()
                .map(|s| {
                    let units: Vec<u16> = bytes[s.value.clone()]
                        .chunks_exact(2)
                        .map(|p| match big {
                            true => u16::from_be_bytes([p[0], p[1]]),
                            false => u16::from_le_bytes([p[0], p[1]]),
                        })
                        .collect();
                    (s.line, s.name.as_str(), String::from_utf16_lossy(&units))
                })
                .collect();
            assert_eq!(
                shown,
                [
                    (2, "reg.1.auth.password", "hunter2".to_string()),
                    (3, "ADMIN_PASSWORD", "1234".to_string())
                ],
                "big endian {big}, byte order mark {bom}"
            );
            assert_eq!(mask_secrets(&bytes, "***"), utf16(&masked, big, bom));
        }
    }

    #[test]
    fn masking_keeps_bytes_that_are_not_utf8() {
        let bytes = b"\xff\xfe note\npassword = p\xe9w\nname = caf\xe9\n";
        assert_eq!(
            mask_secrets(bytes, "*"),
            b"\xff\xfe note\npassword = *\nname = caf\xe9\n"
        );
    }

    #[test]
    fn masking_a_file_without_secrets_changes_nothing() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/sip-9600.46xxsettings.txt"
        );
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(mask_secrets(&bytes, "***"), bytes);
    }

    /// Lines that made the old scan search the rest of the line from every `<` or `=` (480 KB
    /// of `<a>` took it 5.6 s): 4 MiB of them, read once. Every form reads a line in one pass,
    /// so this takes a fraction of a second even unoptimised.
    #[test]
    fn pathological_lines_are_read_in_one_pass() {
        const SIZE: usize = 4 << 20;
        let units = [
            "<a>",
            "<a",
            "a=\"",
            "=",
            "<x y=\"1\">",
            "a='b=\"",
            "</a><a b='",
            "<a b=\"c\" d",
            "x \"y\"; ",
            // URLs without a password, and a scheme that never ends in `://`.
            "a://b@",
            "+://u:@h ",
            "&a=h://u:$x@h",
            "x=a.b+c-",
            "<password>x</password>",
        ];
        let per_line = SIZE / units.len();
        let mut input = String::with_capacity(SIZE);
        for unit in units {
            input.push_str(&unit.repeat(per_line / unit.len()));
            input.push('\n');
        }
        // A long key read once, not again for each of its many children, and `&` pairs.
        let key = "k".repeat(SIZE / 4);
        input.push_str(&format!("<item name=\"{key}\">"));
        input.push_str(&"<part name=\"1\">x</part><v>x</v>".repeat(SIZE / 4 / 32));
        input.push_str("</item>\n");
        input.push_str(&"&a=&&amp;=&".repeat(SIZE / 4 / 11));
        input.push('\n');
        let found = secret_lines(input.as_bytes());
        assert_eq!(found.len(), per_line / "<password>x</password>".len());
        assert!(
            found
                .iter()
                .all(|s| s.line == units.len() && &input[s.value.clone()] == "x")
        );
    }

    proptest! {
        #[test]
        fn any_bytes_are_read_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = secret_lines(&bytes);
        }

        /// A file in UTF-16 shows the secrets its text shows in UTF-8, at the same lines and
        /// under the same names, each value the same text.
        #[test]
        fn utf16_text_shows_the_secrets_of_its_utf8(
            text in prop::collection::vec(
                prop::sample::select(vec![
                    "SET ", "password", "Admin_PIN", "reg.1.auth.password", "name", " = ", "=",
                    ": ", "\"", "'", "<", ">", "</", "/>", " ", "x1", "\u{e9}", "\u{1F600}",
                    "\n", "\r\n", "#", ";",
                ]),
                0..40,
            ).prop_map(|pieces| pieces.concat()),
            big in any::<bool>(),
            bom in any::<bool>(),
        ) {
            let prefixed = format!("<?{text}");
            let units: Vec<u16> = bom.then_some(0xFEFF).into_iter().chain(prefixed.encode_utf16()).collect();
            let bytes: Vec<u8> = units
                .iter()
                .flat_map(|u| if big { u.to_be_bytes() } else { u.to_le_bytes() })
                .collect();
            let decode = |range: &Range<usize>| {
                let units: Vec<u16> = bytes[range.clone()]
                    .chunks_exact(2)
                    .map(|p| if big { u16::from_be_bytes([p[0], p[1]]) } else { u16::from_le_bytes([p[0], p[1]]) })
                    .collect();
                String::from_utf16_lossy(&units)
            };
            let read: Vec<(usize, String, String)> = secret_lines(&bytes)
                .iter()
                .map(|s| (s.line, s.name.clone(), decode(&s.value)))
                .collect();
            let want: Vec<(usize, String, String)> = secret_lines(prefixed.as_bytes())
                .iter()
                .map(|s| (s.line, s.name.clone(), prefixed[s.value.clone()].to_string()))
                .collect();
            prop_assert_eq!(read, want);
        }

        #[test]
        fn markup_like_text_is_read_without_panicking(text in "[<>=\"'/a-zA-Z_ .:;$!&?\t-]{0,80}") {
            for s in secret_lines(text.as_bytes()) {
                prop_assert!(s.value.start < s.value.end && s.value.end <= text.len());
            }
        }

        #[test]
        fn masking_never_panics_and_an_empty_mask_of_a_clean_input_changes_nothing(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            text in "[<>=\"'/a-zA-Z_ .:;$!&?\n-]{0,120}",
        ) {
            for input in [bytes.as_slice(), text.as_bytes()] {
                let masked = mask_secrets(input, "");
                if secret_lines(input).is_empty() {
                    prop_assert_eq!(masked, input);
                } else {
                    prop_assert!(masked.len() < input.len());
                }
            }
        }
    }
}
