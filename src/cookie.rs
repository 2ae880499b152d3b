//! The session cookie: finding it in a Cookie header, express-session's signature
//! (`s:<id>.<base64 HMAC-SHA256>`), and the Set-Cookie line.

use crate::clock;
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Longest cookie value we look at; anything longer is not ours.
const MAX_VALUE: usize = 256;

/// The values of every cookie called `name` in a Cookie header, in order, URL-decoded.
/// Browsers may send duplicates (cookies set for different paths or domains).
pub fn find<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = String> + 'a {
    header.split(';').filter_map(move |pair| {
        let (k, v) = pair.split_once('=')?;
        if k.trim() != name {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        if v.len() > MAX_VALUE {
            return None;
        }
        percent_decode(v)
    })
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Signs and verifies with a list of secrets: the first signs, every one verifies (rotation).
/// Each key's HMAC state is computed once here, not per request.
#[derive(Clone)]
pub struct Signer {
    keys: Vec<HmacSha256>,
}

impl Signer {
    pub fn new(secrets: &[Vec<u8>]) -> Signer {
        // HMAC takes keys of any length, so new_from_slice cannot fail; skip one that did.
        let keys = secrets
            .iter()
            .filter_map(|s| HmacSha256::new_from_slice(s).ok())
            .collect();
        Signer { keys }
    }

    fn mac(key: &HmacSha256, id: &str) -> HmacSha256 {
        let mut m = key.clone();
        m.update(id.as_bytes());
        m
    }

    /// `s:<id>.<sig>`, the cookie value before URL-encoding.
    pub fn sign(&self, id: &str) -> String {
        let sig = match self.keys.first() {
            Some(k) => STANDARD_NO_PAD.encode(Self::mac(k, id).finalize().into_bytes()),
            None => String::new(),
        };
        format!("s:{id}.{sig}")
    }

    /// The id inside a signed value, if a secret verifies it (in constant time), and whether
    /// that was the signing secret (then the value can be sent back as it is).
    pub fn unsign<'a>(&self, value: &'a str) -> Option<(&'a str, bool)> {
        let rest = value.strip_prefix("s:")?;
        let (id, sig) = rest.rsplit_once('.')?;
        if sig.len() != 43 {
            return None;
        }
        let sig = STANDARD_NO_PAD.decode(sig).ok()?;
        self.keys
            .iter()
            .position(|k| Self::mac(k, id).verify_slice(&sig).is_ok())
            .map(|i| (id, i == 0))
    }
}

/// Encodes a signed value as express does (encodeURIComponent): `:`, `+`, `/` and `=` escaped.
pub fn encode_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            ':' => out.push_str("%3A"),
            '+' => out.push_str("%2B"),
            '/' => out.push_str("%2F"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
    out
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

/// Cookie attributes, validated by `options`.
#[derive(Clone, Debug)]
pub struct Attributes {
    pub path: String,
    pub domain: Option<String>,
    pub http_only: bool,
    pub secure: Secure,
    pub same_site: Option<SameSite>,
    /// Cookie lifetime in seconds (cookie.maxAge, else ttl).
    pub max_age: u64,
}

impl Attributes {
    /// A Set-Cookie line carrying `value` (already encoded), alive for max_age seconds from now.
    pub fn line(&self, name: &str, value: &str, secure_request: bool) -> String {
        let expires = clock::now_ms() + (self.max_age as i64) * 1000;
        self.build(name, value, self.max_age, expires, secure_request)
    }

    /// A Set-Cookie line that makes the browser drop the cookie.
    pub fn clearing_line(&self, name: &str, secure_request: bool) -> String {
        self.build(name, "", 0, 0, secure_request)
    }

    fn build(
        &self,
        name: &str,
        value: &str,
        max_age: u64,
        expires_ms: i64,
        secure_request: bool,
    ) -> String {
        let mut s = String::with_capacity(160);
        s.push_str(name);
        s.push('=');
        s.push_str(value);
        s.push_str("; Path=");
        s.push_str(&self.path);
        if let Some(d) = &self.domain {
            s.push_str("; Domain=");
            s.push_str(d);
        }
        s.push_str("; Max-Age=");
        push_number(&mut s, max_age);
        s.push_str("; Expires=");
        clock::push_http_date(&mut s, expires_ms);
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
    s.extend(digits[i..].iter().map(|&d| d as char));
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
        assert_eq!(s.unsign(&old), Some((ID, false)));
        assert_eq!(s.unsign(&s.sign(ID)), Some((ID, true)));
        assert_eq!(s.unsign(&signer(&["other"]).sign(ID)), None);
        let mut bad = old.clone();
        bad.replace_range(3..4, "B");
        assert_eq!(s.unsign(&bad), None);
        assert_eq!(s.unsign(ID), None);
        assert_eq!(s.unsign("s:"), None);
        assert_eq!(s.unsign("s:."), None);
        assert_eq!(s.unsign(&format!("{old}x")), None);
    }

    #[test]
    fn finds_and_decodes_duplicates() {
        let h = "a=1; sid=s%3Aone.x; b=2;sid=\"two\"; sidx=3; =4; junk";
        let got: Vec<String> = find(h, "sid").collect();
        assert_eq!(got, vec!["s:one.x".to_string(), "two".to_string()]);
        assert_eq!(find("sid=%zz", "sid").count(), 0);
        assert_eq!(find("sid=%", "sid").count(), 0);
    }

    #[test]
    fn builds_set_cookie_lines() {
        let a = Attributes {
            path: "/".into(),
            domain: Some("example.com".into()),
            http_only: true,
            secure: Secure::Auto,
            same_site: Some(SameSite::Lax),
            max_age: 60,
        };
        let line = a.line("sid", "v", true);
        assert!(line.starts_with("sid=v; Path=/; Domain=example.com; Max-Age=60; Expires="));
        assert!(line.ends_with("GMT; HttpOnly; Secure; SameSite=Lax"));
        let clear = a.clearing_line("sid", false);
        assert_eq!(
            clear,
            "sid=; Path=/; Domain=example.com; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"
        );
    }
}

#[cfg(test)]
mod garbage {
    use super::*;

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
            for v in find(&s, "s") {
                let _ = signer.unsign(&v);
            }
            let _ = signer.unsign(&s);
        }
    }
}
