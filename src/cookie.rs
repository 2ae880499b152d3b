//! The session cookie: finding it in a Cookie header, express-session's signature
//! (`s:<id>.<base64 HMAC-SHA256>`), and the Set-Cookie line.

use crate::clock;
use crate::id::ID_LEN;
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::cell::Cell;

type HmacSha256 = Hmac<Sha256>;

/// The length of a signature's text: 32 bytes of HMAC-SHA256 in base64 without padding.
const SIG_LEN: usize = 43;

/// Longest cookie value we look at; anything longer is not ours.
const MAX_VALUE: usize = 256;

/// Calls `f` with the value of every cookie called `name` in a Cookie header, in order,
/// URL-decoded into a stack buffer (no allocation per request), until `f` returns false.
/// Browsers may send duplicates (cookies set for different paths or domains). Values longer
/// than `MAX_VALUE` or badly escaped are not ours and are skipped. `name` is a cookie name
/// (a token: no `=`, no whitespace), as the options check.
pub fn each_value(header: &[u8], name: &[u8], mut f: impl FnMut(&[u8]) -> bool) {
    let mut buf = [0u8; MAX_VALUE];
    let mut rest = header;
    loop {
        let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
        let (pair, after) = rest.split_at(end);
        if let Some(v) = value_of(pair, name)
            && let Some(n) = percent_decode(v, &mut buf)
            && !f(&buf[..n])
        {
            return;
        }
        // `after` is empty or starts with the `;`.
        let Some(next) = after.get(1..) else { return };
        rest = next;
    }
}

/// The value of one `name=value` pair of a Cookie header, when the pair names `name`: the
/// name (and the value) may have spaces and tabs around them, and the value double quotes. A
/// pair is looked at only up to its name, not split at its `=` first: `name` holds no `=` and
/// no whitespace, so a pair that starts with it, blanks and `=` is exactly one whose part
/// before its first `=` is `name` once trimmed.
fn value_of<'a>(pair: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let after_name = trim_blanks_start(pair).strip_prefix(name)?;
    let mut v = trim_blanks_end(trim_blanks_start(
        trim_blanks_start(after_name).strip_prefix(b"=")?,
    ));
    if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
        v = &v[1..v.len() - 1];
    }
    Some(v)
}

/// Spaces and tabs, the only whitespace express's `cookie` module trims around a name and a
/// value: with a form feed or a carriage return there (`\x0csid=…`), the pair is another
/// cookie for express-session, so it must not be ours either (a Node app sharing the sessions
/// would read another one, or none).
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_blanks_start(s: &[u8]) -> &[u8] {
    let n = s.iter().position(|&b| !is_blank(b)).unwrap_or(s.len());
    s.get(n..).unwrap_or_default()
}

fn trim_blanks_end(s: &[u8]) -> &[u8] {
    let n = s.iter().rposition(|&b| !is_blank(b)).map_or(0, |i| i + 1);
    s.get(..n).unwrap_or_default()
}

/// Decodes `%XX` escapes of `s` into `out`; the decoded length, or None if it does not fit or
/// an escape is malformed. The runs between escapes are copied whole (a signed value has two
/// or three escapes in about 80 bytes).
fn percent_decode(s: &[u8], out: &mut [u8; MAX_VALUE]) -> Option<usize> {
    let mut n = 0;
    let mut rest = s;
    loop {
        let run = memchr::memchr(b'%', rest).unwrap_or(rest.len());
        let (plain, escape) = rest.split_at(run);
        out.get_mut(n..n + run)?.copy_from_slice(plain);
        n += run;
        let [_, hi, lo, after @ ..] = escape else {
            // The end, or an escape cut short.
            return escape.is_empty().then_some(n);
        };
        let digit = |c: u8| (c as char).to_digit(16);
        *out.get_mut(n)? = (digit(*hi)? * 16 + digit(*lo)?) as u8;
        n += 1;
        rest = after;
    }
}

/// Signs and verifies with a list of secrets: the first signs, every one verifies (rotation).
/// Each key's HMAC state is computed once here, not per request.
#[derive(Clone)]
pub struct Signer {
    keys: Vec<HmacSha256>,
    /// The signature the first secret gave the last id it verified, as the cookie carried it
    /// (base64, which decoding checked is the canonical text): a request that loads a session
    /// and sends its cookie again signs the same id, so one HMAC does for both, and the
    /// signature is not encoded again.
    last: Cell<Option<([u8; ID_LEN], [u8; SIG_LEN])>>,
}

impl Signer {
    pub fn new(secrets: &[Vec<u8>]) -> Signer {
        // HMAC takes keys of any length, so new_from_slice cannot fail; skip one that did.
        let keys = secrets
            .iter()
            .filter_map(|s| HmacSha256::new_from_slice(s).ok())
            .collect();
        Signer {
            keys,
            last: Cell::new(None),
        }
    }

    /// The first secret's signature of `id`, in base64 without padding.
    fn signature(&self, key: &HmacSha256, id: &str) -> [u8; SIG_LEN] {
        if let Some((was, sig)) = self.last.get()
            && was.as_slice() == id.as_bytes()
        {
            return sig;
        }
        let mut sig = [0u8; SIG_LEN];
        // 32 bytes take exactly SIG_LEN characters, so this cannot fail.
        let _ = STANDARD_NO_PAD.encode_slice(Self::mac(key, id).finalize().into_bytes(), &mut sig);
        sig
    }

    fn mac(key: &HmacSha256, id: &str) -> HmacSha256 {
        let mut m = key.clone();
        m.update(id.as_bytes());
        m
    }

    /// `s:<id>.<sig>`, the cookie value before URL-encoding.
    #[cfg(test)]
    pub fn sign(&self, id: &str) -> String {
        let mut out = String::with_capacity(id.len() + 48);
        out.push_str("s:");
        out.push_str(id);
        out.push('.');
        if let Some(k) = self.keys.first() {
            STANDARD_NO_PAD.encode_string(Self::mac(k, id).finalize().into_bytes(), &mut out);
        }
        out
    }

    /// `encode_value(sign(id))`, the value a Set-Cookie line carries.
    #[cfg(test)]
    pub fn cookie_value(&self, id: &str) -> String {
        let mut out = String::new();
        self.push_cookie_value(&mut out, id);
        out
    }

    /// Appends `encode_value(sign(id))` (into the Set-Cookie line being built).
    pub fn push_cookie_value(&self, out: &mut String, id: &str) {
        out.push_str("s%3A");
        push_encoded(out, id);
        out.push('.');
        if let Some(k) = self.keys.first() {
            let sig = self.signature(k, id);
            // base64 is ASCII.
            push_encoded(out, std::str::from_utf8(&sig).unwrap_or_default());
        }
    }

    /// The id inside a signed value, if it has the shape of an id we look up
    /// (`id::looks_valid`) and a secret verifies it (in constant time).
    pub fn unsign<'a>(&self, value: &'a [u8]) -> Option<&'a str> {
        let rest = value.strip_prefix(b"s:")?;
        let dot = rest.iter().rposition(|&b| b == b'.')?;
        let (id, sig) = (&rest[..dot], &rest[dot + 1..]);
        // Checked before the MAC: no other id is looked up, and its bytes are then ASCII, which
        // spares a UTF-8 validation on every load.
        if sig.len() != 43 || !crate::id::looks_valid(id) {
            return None;
        }
        // SAFETY: looks_valid admits only ASCII bytes (the URL-safe base64 alphabet), and
        // ASCII is valid UTF-8.
        let id = unsafe { std::str::from_utf8_unchecked(id) };
        let mut mac = [0u8; 32];
        // Strict decoding (no padding, no stray trailing bits): a signature has one text,
        // so the text kept below is the one `signature` would encode.
        if STANDARD_NO_PAD.decode_slice(sig, &mut mac).ok()? != 32 {
            return None;
        }
        let by = self
            .keys
            .iter()
            .position(|k| Self::mac(k, id).verify_slice(&mac).is_ok())?;
        if by == 0
            && let (Ok(was), Ok(text)) = (
                <[u8; ID_LEN]>::try_from(id.as_bytes()),
                <[u8; SIG_LEN]>::try_from(sig),
            )
        {
            self.last.set(Some((was, text)));
        }
        Some(id)
    }
}

/// Encodes a signed value as express does (encodeURIComponent): `:`, `+`, `/` and `=` escaped.
#[cfg(test)]
pub fn encode_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    push_encoded(&mut out, v);
    out
}

/// The bytes express escapes in a signed value (`:`, `+`, `/`, `=`), one table lookup per
/// byte: ids and signatures are scanned on every Set-Cookie line.
const ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    t[b':' as usize] = true;
    t[b'+' as usize] = true;
    t[b'/' as usize] = true;
    t[b'=' as usize] = true;
    t
};

/// Whether `v` holds a byte express escapes. Sixteen bytes at a time, without stopping early:
/// the compiler makes each block a few vector compares, where a lookup per byte cost about as
/// much as the rest of the Set-Cookie line.
fn needs_escape(v: &[u8]) -> bool {
    let hit = |b: u8| {
        u8::from(b == b':') | u8::from(b == b'+') | u8::from(b == b'/') | u8::from(b == b'=')
    };
    let mut blocks = v.chunks_exact(16);
    let mut found = 0u8;
    for block in &mut blocks {
        found |= block.iter().fold(0, |m, &b| m | hit(b));
    }
    for &b in blocks.remainder() {
        found |= hit(b);
    }
    found != 0
}

/// Appends `v` with express's escapes, copying the runs between them whole (the escaped
/// characters are ASCII, so every cut falls on a character boundary).
fn push_encoded(out: &mut String, v: &str) {
    // Most values need no escape (an id never does): one scan, one copy.
    if !needs_escape(v.as_bytes()) {
        out.push_str(v);
        return;
    }
    let mut start = 0;
    for (i, b) in v.bytes().enumerate() {
        if !ESCAPED[usize::from(b)] {
            continue;
        }
        let escaped = match b {
            b':' => "%3A",
            b'+' => "%2B",
            b'/' => "%2F",
            _ => "%3D",
        };
        out.push_str(v.get(start..i).unwrap_or_default());
        out.push_str(escaped);
        start = i + 1;
    }
    out.push_str(v.get(start..).unwrap_or_default());
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secure {
    Never,
    Always,
    /// Secure exactly when the request came over HTTPS.
    Auto,
}

/// The `Priority` attribute (Chrome's; other browsers ignore it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    Low,
    Medium,
    High,
}

impl Priority {
    /// The attribute's value, as express's `cookie` module writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "Low",
            Priority::Medium => "Medium",
            Priority::High => "High",
        }
    }

    /// `"low"`, `"medium"` or `"high"` in any case, as express's `cookie` module accepts it.
    pub fn parse(s: &[u8]) -> Option<Priority> {
        match s.to_ascii_lowercase().as_slice() {
            b"low" => Some(Priority::Low),
            b"medium" => Some(Priority::Medium),
            b"high" => Some(Priority::High),
            _ => None,
        }
    }
}

/// Cookie attributes, validated by `options`.
#[derive(Clone, Debug)]
pub struct Attributes {
    pub path: String,
    pub domain: Option<String>,
    pub http_only: bool,
    pub secure: Secure,
    pub same_site: Option<SameSite>,
    /// CHIPS's `Partitioned` (options make sure it comes with `secure = Always`).
    pub partitioned: bool,
    pub priority: Option<Priority>,
    /// Cookie lifetime in seconds (cookie.maxAge, else ttl); None for a browser-session cookie
    /// (cookie.maxAge = false): no Max-Age and no Expires, gone when the browser closes.
    pub max_age: Option<u64>,
}

impl Attributes {
    /// A Set-Cookie line carrying `value` (already encoded), alive for `max_age` seconds from
    /// `now` (ms since the epoch: `Max-Age` and `Expires`), or for the browser session when
    /// `max_age` is None. The engine passes `self.max_age`; a per-session lifetime may differ.
    #[cfg(test)]
    pub fn line(
        &self,
        name: &str,
        value: &str,
        secure_request: bool,
        max_age: Option<u64>,
        now: i64,
    ) -> String {
        self.line_with(name, |s| s.push_str(value), secure_request, max_age, now)
    }

    /// As `line`, with the value written into the line by `value` (no string of its own).
    pub fn line_with(
        &self,
        name: &str,
        value: impl FnOnce(&mut String),
        secure_request: bool,
        max_age: Option<u64>,
        now: i64,
    ) -> String {
        let life = max_age.map(|m| {
            let ms = i64::try_from(m.saturating_mul(1000)).unwrap_or(i64::MAX);
            (m, now.saturating_add(ms))
        });
        self.build(name, value, life, secure_request)
    }

    /// A Set-Cookie line that makes the browser drop the cookie.
    pub fn clearing_line(&self, name: &str, secure_request: bool) -> String {
        self.build(name, |_| {}, Some((0, 0)), secure_request)
    }

    /// `life` is `(Max-Age, Expires in ms since the epoch)`, or None for neither.
    fn build(
        &self,
        name: &str,
        value: impl FnOnce(&mut String),
        life: Option<(u64, i64)>,
        secure_request: bool,
    ) -> String {
        // Room for a signed value with every escape its signature can need, the attributes
        // and a date: one allocation per line.
        let extra = self.domain.as_ref().map_or(0, String::len);
        let mut s = String::with_capacity(256 + name.len() + self.path.len() + extra);
        s.push_str(name);
        s.push('=');
        value(&mut s);
        s.push_str("; Path=");
        s.push_str(&self.path);
        if let Some(d) = &self.domain {
            s.push_str("; Domain=");
            s.push_str(d);
        }
        if let Some((max_age, expires_ms)) = life {
            s.push_str("; Max-Age=");
            push_number(&mut s, max_age);
            s.push_str("; Expires=");
            clock::push_http_date(&mut s, expires_ms);
        }
        if self.http_only {
            s.push_str("; HttpOnly");
        }
        let secure = match self.secure {
            Secure::Always => true,
            Secure::Never => false,
            Secure::Auto => secure_request,
        };
        if secure {
            s.push_str("; Secure");
        }
        // express's `cookie` module's order: Partitioned and Priority before SameSite.
        if self.partitioned {
            s.push_str("; Partitioned");
        }
        if let Some(p) = self.priority {
            s.push_str("; Priority=");
            s.push_str(p.as_str());
        }
        if let Some(ss) = self.same_site {
            s.push_str("; SameSite=");
            s.push_str(ss.as_str());
        }
        s
    }
}

/// Appends a number's decimal digits (no formatting machinery on the hot path).
fn push_number(s: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits: one copy, not a char at a time.
    s.push_str(std::str::from_utf8(&digits[i..]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn signer(secrets: &[&str]) -> Signer {
        Signer::new(
            &secrets
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn matches_express_session_signature() {
        // cookie-signature's sign("hello", "tobiiscool") from its own test suite.
        assert_eq!(
            signer(&["tobiiscool"]).sign("hello"),
            "s:hello.DGDUkGlIkCzPz+C0B064FNgHdEjox7ch8tOBGslZ5QI"
        );
    }

    #[test]
    fn unsigns_with_any_secret_and_rejects_tampering() {
        let s = signer(&["new", "old"]);
        let old = signer(&["old"]).sign(ID);
        assert_eq!(s.unsign(old.as_bytes()), Some(ID));
        assert_eq!(s.unsign(s.sign(ID).as_bytes()), Some(ID));
        assert_eq!(s.unsign(signer(&["other"]).sign(ID).as_bytes()), None);
        let mut bad = old.clone();
        bad.replace_range(3..4, "B");
        assert_eq!(s.unsign(bad.as_bytes()), None);
        assert_eq!(s.unsign(ID.as_bytes()), None);
        assert_eq!(s.unsign(b"s:"), None);
        assert_eq!(s.unsign(b"s:."), None);
        assert_eq!(s.unsign(format!("{old}x").as_bytes()), None);
        // Signed, but not an id we look up: refused before the MAC (and never handed on as
        // text, so no UTF-8 check is needed).
        for id in [
            "has space",
            "caf\u{e9}",
            "a.b",
            &"a".repeat(crate::id::MAX_COOKIE_ID + 1),
        ] {
            assert_eq!(s.unsign(s.sign(id).as_bytes()), None, "{id}");
        }
        let longest = "a".repeat(crate::id::MAX_COOKIE_ID);
        assert_eq!(
            s.unsign(s.sign(&longest).as_bytes()),
            Some(longest.as_str())
        );
    }

    #[test]
    fn a_verified_signature_is_reused_only_for_its_id_and_the_first_secret() {
        const OTHER: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
        let s = signer(&["new", "old"]);
        let fresh = |id: &str| encode_value(&signer(&["new"]).sign(id));
        // Verified with the old secret: the cookie sent back is signed with the new one.
        assert_eq!(s.unsign(signer(&["old"]).sign(ID).as_bytes()), Some(ID));
        assert_eq!(s.cookie_value(ID), fresh(ID));
        // Verified with the new secret: the same value, also for another id afterwards.
        assert_eq!(s.unsign(s.sign(ID).as_bytes()), Some(ID));
        assert_eq!(s.cookie_value(ID), fresh(ID));
        assert_eq!(s.cookie_value(OTHER), fresh(OTHER));
        // A cookie for another id with a tampered signature leaves nothing behind.
        let mut bad = s.sign(OTHER);
        let at = bad.len() - 2;
        let flipped = if &bad[at..at + 1] == "A" { "B" } else { "A" };
        bad.replace_range(at..at + 1, flipped);
        assert_eq!(s.unsign(bad.as_bytes()), None);
        assert_eq!(s.cookie_value(OTHER), fresh(OTHER));
        assert_eq!(s.cookie_value(ID), fresh(ID));
    }

    fn find(header: &str, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        each_value(header.as_bytes(), name.as_bytes(), |v| {
            out.push(String::from_utf8_lossy(v).into_owned());
            true
        });
        out
    }

    #[test]
    fn finds_and_decodes_duplicates() {
        let h = "a=1; sid=s%3Aone.x; b=2;sid=\"two\"; sidx=3; =4; junk";
        assert_eq!(
            find(h, "sid"),
            vec!["s:one.x".to_string(), "two".to_string()]
        );
        // Spaces and tabs around the name and the value, as express's `cookie` module trims
        // them; any other whitespace makes the pair another cookie there, and here.
        assert_eq!(find("\t sid \t=\t \"v\" \t", "sid"), vec!["v".to_string()]);
        for h in [
            "\x0csid=v",
            "sid\r=v",
            "\nsid=v",
            "sid=\x0cv",
            "sid=v\r",
            "sid=v\x0b",
        ] {
            let found = find(h, "sid");
            assert!(found.iter().all(|v| v != "v"), "{h:?}: {found:?}");
        }
        assert_eq!(find("\x0csid=one; sid=two", "sid"), vec!["two".to_string()]);
        assert!(find("sid=%zz", "sid").is_empty());
        assert!(find("sid=%", "sid").is_empty());
        assert!(find(&format!("sid={}", "a".repeat(MAX_VALUE + 1)), "sid").is_empty());
        assert_eq!(
            find(&format!("sid={}", "a".repeat(MAX_VALUE)), "sid").len(),
            1
        );
    }

    fn attributes() -> Attributes {
        Attributes {
            path: "/".into(),
            domain: Some("example.com".into()),
            http_only: true,
            secure: Secure::Auto,
            same_site: Some(SameSite::Lax),
            partitioned: false,
            priority: None,
            max_age: Some(60),
        }
    }

    /// Byte by byte, the plain way: what `percent_decode` must agree with.
    fn reference_decode(s: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < s.len() {
            if s[i] == b'%' {
                let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else {
                out.push(s[i]);
                i += 1;
            }
        }
        (out.len() <= MAX_VALUE).then_some(out)
    }

    #[test]
    fn percent_decoding_agrees_with_the_plain_way() {
        let alphabet = b"a%2Bz";
        let mut cases: Vec<Vec<u8>> = vec![
            b"s%3Ahello.DGDUkGlIkCzPz%2BC0B064FNgHdEjox7ch8tOBGslZ5QI".to_vec(),
            vec![b'x'; MAX_VALUE],
            vec![b'x'; MAX_VALUE + 1],
            b"%41".repeat(MAX_VALUE / 3 + 1),
            [vec![b'x'; MAX_VALUE - 1], b"%41".to_vec()].concat(),
            [vec![b'x'; MAX_VALUE], b"%41".to_vec()].concat(),
        ];
        // Every string of up to 6 characters over an alphabet with an escape's parts.
        let mut frontier = vec![Vec::new()];
        for _ in 0..6 {
            let mut next = Vec::new();
            for s in &frontier {
                for &c in alphabet {
                    let mut t = s.clone();
                    t.push(c);
                    next.push(t);
                }
            }
            cases.extend(next.iter().cloned());
            frontier = next;
        }
        for case in cases {
            let mut buf = [0u8; MAX_VALUE];
            let got = percent_decode(&case, &mut buf).map(|n| buf[..n].to_vec());
            assert_eq!(
                got,
                reference_decode(&case),
                "{:?}",
                String::from_utf8_lossy(&case)
            );
        }
    }

    #[test]
    fn the_cookie_value_is_the_encoded_signature() {
        for secrets in [&["tobiiscool"][..], &["a", "b"], &[""]] {
            let s = signer(secrets);
            for id in [ID, "hello", "with:colon+plus/slash=eq", ""] {
                assert_eq!(s.cookie_value(id), encode_value(&s.sign(id)), "{id}");
            }
        }
        // express-session's own example value, URL-encoded as express writes it.
        assert_eq!(
            signer(&["tobiiscool"]).cookie_value("hello"),
            "s%3Ahello.DGDUkGlIkCzPz%2BC0B064FNgHdEjox7ch8tOBGslZ5QI"
        );
    }

    #[test]
    fn values_escape_exactly_what_express_escapes() {
        // encodeURIComponent leaves base64's other characters and the id alphabet alone.
        for b in 0x20u8..0x7f {
            let c = char::from(b);
            let want = match c {
                ':' | '+' | '/' | '=' => format!("%{b:02X}"),
                _ => c.to_string(),
            };
            assert_eq!(
                encode_value(&format!("a{c}b{c}")),
                format!("a{want}b{want}")
            );
        }
        // A signature text kept from a verified cookie is the one signing makes, escapes and
        // all, including one whose base64 needs several.
        let s = signer(&["k"]);
        for id in (0..64).map(|i| format!("{}{i:02}", &ID[..ID_LEN - 2])) {
            let cookie = s.sign(&id);
            let fresh = s.cookie_value(&id);
            assert_eq!(s.unsign(cookie.as_bytes()), Some(id.as_str()));
            assert!(s.last.get().is_some_and(|(was, _)| was == id.as_bytes()));
            assert_eq!(s.cookie_value(&id), fresh);
        }
    }

    #[test]
    fn builds_set_cookie_lines() {
        let a = attributes();
        let line = a.line("sid", "v", true, a.max_age, clock::now_ms());
        assert!(line.starts_with("sid=v; Path=/; Domain=example.com; Max-Age=60; Expires="));
        assert!(line.ends_with("GMT; HttpOnly; Secure; SameSite=Lax"));
        let clear = a.clearing_line("sid", false);
        assert_eq!(
            clear,
            "sid=; Path=/; Domain=example.com; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn the_lifetime_is_the_callers() {
        let a = attributes();
        let line = a.line("sid", "v", false, Some(3600), clock::now_ms());
        assert!(line.contains("; Max-Age=3600; Expires="), "{line}");
        let expires = line
            .split("; ")
            .find_map(|p| p.strip_prefix("Expires="))
            .unwrap_or_default();
        // Within a second of the expected date (the clock may tick between the two reads).
        let want = |ms: i64| clock::http_date(ms);
        let now = clock::now_ms();
        assert!(
            [want(now + 3_600_000), want(now + 3_599_000)].contains(&expires.to_string()),
            "{expires}"
        );
        // A browser-session cookie: neither Max-Age nor Expires.
        assert_eq!(
            a.line("sid", "v", false, None, clock::now_ms()),
            "sid=v; Path=/; Domain=example.com; HttpOnly; SameSite=Lax"
        );
        // The longest lifetime options allow still makes a date, and nothing overflows.
        let _ = a.line("sid", "v", false, Some(u64::MAX), clock::now_ms());
    }

    #[test]
    fn partitioned_and_priority_come_before_same_site() {
        let a = Attributes {
            secure: Secure::Always,
            same_site: Some(SameSite::None),
            partitioned: true,
            priority: Some(Priority::High),
            domain: None,
            ..attributes()
        };
        assert_eq!(
            a.line("__Host-sid", "v", false, None, clock::now_ms()),
            "__Host-sid=v; Path=/; HttpOnly; Secure; Partitioned; Priority=High; SameSite=None"
        );
        let clear = a.clearing_line("__Host-sid", false);
        assert!(
            clear.ends_with("GMT; HttpOnly; Secure; Partitioned; Priority=High; SameSite=None"),
            "{clear}"
        );
        let low = Attributes {
            priority: Some(Priority::Low),
            same_site: None,
            ..attributes()
        };
        assert!(
            low.line("s", "v", false, None, clock::now_ms())
                .ends_with("; HttpOnly; Priority=Low")
        );
    }

    #[test]
    fn priority_parses_in_any_case() {
        assert_eq!(Priority::parse(b"high"), Some(Priority::High));
        assert_eq!(Priority::parse(b"MEDIUM"), Some(Priority::Medium));
        assert_eq!(Priority::parse(b"Low"), Some(Priority::Low));
        assert_eq!(Priority::parse(b"low "), None);
        assert_eq!(Priority::parse(b""), None);
        assert_eq!(Priority::parse(b"urgent"), None);
        assert_eq!(Priority::Medium.as_str(), "Medium");
    }
}

#[cfg(test)]
mod garbage {
    use super::*;

    /// Spaces and tabs off both ends, as express's `cookie` module trims names and values.
    fn trim(mut s: &[u8]) -> &[u8] {
        while let [b' ' | b'\t', rest @ ..] = s {
            s = rest;
        }
        while let [rest @ .., b' ' | b'\t'] = s {
            s = rest;
        }
        s
    }

    /// `each_value` as it was written first: split at every `;`, then at the first `=`.
    fn reference_values(header: &[u8], name: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; MAX_VALUE];
        for pair in header.split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if trim(&pair[..eq]) != name {
                continue;
            }
            let mut v = trim(&pair[eq + 1..]);
            if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
                v = &v[1..v.len() - 1];
            }
            if let Some(n) = percent_decode(v, &mut buf) {
                out.push(buf[..n].to_vec());
            }
        }
        out
    }

    fn values(header: &[u8], name: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        each_value(header, name, |v| {
            out.push(v.to_vec());
            true
        });
        out
    }

    #[test]
    fn finds_what_splitting_every_pair_finds() {
        let cases: [&[u8]; 12] = [
            b"",
            b";;;",
            b"sid",
            b"sid=",
            b" sid \t= \"a\" ;sid=b",
            b"sid==x; sid = =y",
            b"xsid=1; sidx=2; s id=3; sid=4",
            b"a=b=c; sid=%3A%3a; sid=\"\"; sid=\"",
            b"sid\r\n=v1;\x0csid=v2",
            b"sid=one;sid=two;sid=three;sid=four;sid=five;sid=six;sid=seven",
            b"k1=v1; k2=v2; k3=v3; k4=v4; k5=v5; k6=v6; k7=v7; k8=v8; sid=last",
            b"sid=\x80\xff;\x00sid=\x00",
        ];
        for case in cases {
            assert_eq!(
                values(case, b"sid"),
                reference_values(case, b"sid"),
                "{case:?}"
            );
        }
        // Random headers over an alphabet that makes pairs, names, spaces and escapes meet.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let alphabet = b"sid=;; \t\"%3Aa\x0c\r";
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let h: Vec<u8> = (0..len)
                .map(|i| alphabet[((x >> (i % 48)) as usize + i * 7) % alphabet.len()])
                .collect();
            for name in [&b"sid"[..], b"s", b"id"] {
                assert_eq!(values(&h, name), reference_values(&h, name), "{h:?}");
            }
        }
    }

    #[test]
    fn parsing_and_unsigning_garbage_never_panics() {
        let signer = Signer::new(&[b"s".to_vec()]);
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let alphabet = "s:%.;= \"aZ09+/-_é\u{0}\u{7f}";
        let chars: Vec<char> = alphabet.chars().collect();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 60) as usize;
            let s: String = (0..len)
                .map(|i| chars[((x >> (i % 50)) as usize + i) % chars.len()])
                .collect();
            each_value(s.as_bytes(), b"s", |v| {
                let _ = signer.unsign(v);
                true
            });
            let _ = signer.unsign(s.as_bytes());
        }
    }
}
