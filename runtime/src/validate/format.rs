//! The formats gwgen asserts: `date-time`, `date`, `time` (RFC 3339), `email`, `uuid`, `uri`,
//! `ipv4`, `ipv6`, `hostname` for strings; `int32` and `int64` for numbers; `byte` (base64).

/// `date-time`: RFC 3339 `full-date "T" full-time` (`t`/`z` allowed, leap seconds at 23:59).
pub fn date_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 11 && matches!(b[10], b'T' | b't') && date(&s[..10]) && time(&s[11..])
}

/// `date`: RFC 3339 `full-date`, with the month's real length.
pub fn date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(y), Some(m), Some(d)) = (digits(&b[0..4]), digits(&b[5..7]), digits(&b[8..10]))
    else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// `time`: RFC 3339 `full-time` (an offset is required).
pub fn time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 9 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    let (Some(h), Some(m), Some(sec)) = (digits(&b[0..2]), digits(&b[3..5]), digits(&b[6..8]))
    else {
        return false;
    };
    if h > 23 || m > 59 || sec > 60 {
        return false;
    }
    let mut i = 8;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    let (oh, om) = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => (0i64, 0i64),
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &b[i + 1..];
            if rest.len() != 5 || rest[2] != b':' {
                return false;
            }
            let (Some(oh), Some(om)) = (digits(&rest[0..2]), digits(&rest[3..5])) else {
                return false;
            };
            if oh > 23 || om > 59 {
                return false;
            }
            if sign == b'+' {
                (oh as i64, om as i64)
            } else {
                (-(oh as i64), -(om as i64))
            }
        }
        _ => return false,
    };
    if sec == 60 {
        // A leap second is only ever the last second of a UTC day.
        let utc = (h as i64 * 60 + m as i64 - (oh * 60 + om)).rem_euclid(24 * 60);
        return utc == 23 * 60 + 59;
    }
    true
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32)
    })
}

/// The bytes of an unquoted local part: RFC 5322's `atext` (printable ASCII but the specials
/// `()<>[]:;@\,"`) and `.`.
static DOT_ATOM: [bool; 256] = crate::path::byte_class(0x21, 0x7e, b"()<>[]:;@\\,\"");

/// `email`: a dot-atom or quoted local part, `@`, and a hostname or an address literal.
pub fn email(s: &str) -> bool {
    let Some(at) = s.bytes().rposition(|c| c == b'@') else {
        return false;
    };
    let (local, domain) = (&s[..at], &s[at + 1..]);
    if local.is_empty() || local.len() > 64 {
        return false;
    }
    let local_ok = if local.starts_with('"') {
        local.len() >= 2 && local.ends_with('"')
    } else {
        // A dot-atom: `atext` runs joined by single dots.
        let b = local.as_bytes();
        let mut prev = b'.';
        b[b.len() - 1] != b'.'
            && b.iter().all(|&c| {
                let ok = DOT_ATOM[usize::from(c)] && !(c == b'.' && prev == b'.');
                prev = c;
                ok
            })
    };
    if !local_ok {
        return false;
    }
    if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return match lit.strip_prefix("IPv6:") {
            Some(v6) => ipv6(v6),
            None => ipv4(lit),
        };
    }
    hostname(domain)
}

/// `uuid`: 8-4-4-4-12 hexadecimal digits.
pub fn uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && [&b[..8], &b[9..13], &b[14..18], &b[19..23], &b[24..]]
            .iter()
            .all(|part| part.iter().all(u8::is_ascii_hexdigit))
}

/// `ipv4`: four decimal octets, no leading zeros.
pub fn ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|c| c.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
                && p.parse::<u16>().is_ok_and(|v| v <= 255)
        })
}

/// `ipv6`: RFC 4291 text forms (no zone id).
pub fn ipv6(s: &str) -> bool {
    s.parse::<std::net::Ipv6Addr>().is_ok() && !s.contains('%')
}

/// `hostname`: RFC 1123 labels of letters, digits and inner hyphens, 63 bytes each, 253 in all.
pub fn hostname(s: &str) -> bool {
    let b = s.as_bytes();
    let b = b.strip_suffix(b".").unwrap_or(b);
    if b.is_empty() || b.len() > 253 {
        return false;
    }
    // One pass: each byte a letter, digit or hyphen, each label checked at the dot after it.
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'.' {
            if !label(&b[start..i]) {
                return false;
            }
            start = i + 1;
        } else if !LDH[usize::from(c)] {
            return false;
        }
    }
    label(&b[start..])
}

/// A hostname's label, its bytes already known to be letters, digits and hyphens: 1 to 63 of
/// them, no hyphen at either end, and `--` in third place only for an A-label (`xn--`).
#[inline]
fn label(b: &[u8]) -> bool {
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            b.len() <= 63
                && first != b'-'
                && last != b'-'
                && !(b.len() >= 4 && b[2] == b'-' && b[3] == b'-' && !b.starts_with(b"xn--"))
        }
        _ => false,
    }
}

/// Letters, digits and hyphens: the bytes of a hostname's label.
static LDH: [bool; 256] = crate::path::byte_class(b'-', b'z', b"./:;<=>?@[\\]^_`");

/// `uri`: an absolute URI (RFC 3986): a scheme, then characters a URI may hold.
pub fn uri(s: &str) -> bool {
    let Some(colon) = s.find(':') else {
        return false;
    };
    let scheme = &s[..colon];
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    scheme_ok && uri_chars(&s[colon + 1..]) && authority_ok(&s[colon + 1..])
}

/// `uri-reference`: a URI or a relative reference.
pub fn uri_reference(s: &str) -> bool {
    uri_chars(s) && (!s.starts_with("//") || authority_ok(s))
}

fn authority_ok(rest: &str) -> bool {
    let Some(after) = rest.strip_prefix("//") else {
        return true;
    };
    let auth = after.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = auth.rsplit_once('@').map(|(_, h)| h).unwrap_or(auth);
    if host_port.starts_with('[') {
        return host_port.contains(']');
    }
    match host_port.rsplit_once(':') {
        Some((_, port)) => port.bytes().all(|c| c.is_ascii_digit()),
        None => true,
    }
}

fn uri_chars(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut hashes = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if !(i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
            continue;
        }
        if c == b'#' {
            hashes += 1;
        }
        if !(c.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&c)) {
            return false;
        }
        i += 1;
    }
    hashes <= 1
}

/// `byte`: standard base64 with padding.
pub fn byte(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() % 4 != 0 {
        return false;
    }
    let pad = b.iter().rev().take_while(|&&c| c == b'=').count();
    pad <= 2
        && b[..b.len() - pad]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

/// `int32`: an integer in the signed 32-bit range.
pub fn int32(x: f64) -> bool {
    x.fract() == 0.0 && (i32::MIN as f64..=i32::MAX as f64).contains(&x)
}

/// `int64`: an integer in the signed 64-bit range.
pub fn int64(x: f64) -> bool {
    x.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unquoted_local_part_takes_atext_and_single_inner_dots() {
        // RFC 5322 `atext`: letters, digits and these; every other byte is refused.
        let atext = "!#$%&'*+-/=?^_`{|}~";
        for b in 0u8..=255 {
            let c = b as char;
            let local = format!("a{c}b");
            let want = c.is_ascii_alphanumeric() || atext.contains(c) || c == '.';
            assert_eq!(email(&format!("{local}@example.com")), want, "{b:#04x}");
        }
        for bad in [".a@x.com", "a.@x.com", "a..b@x.com", "@x.com", "é@x.com"] {
            assert!(!email(bad), "{bad}");
        }
        assert!(email("a.b.c@x.com") && email("\"a b\"@x.com"));
    }

    #[test]
    fn a_hostname_label_takes_letters_digits_and_inner_hyphens() {
        for b in 0u8..=255 {
            let c = b as char;
            let want = c.is_ascii_alphanumeric() || c == '-' || c == '.';
            assert_eq!(hostname(&format!("a{c}b.example")), want, "{b:#04x}");
            assert_eq!(email(&format!("x@a{c}b.example")), want, "{b:#04x}");
        }
        for bad in [
            "a..b",
            ".a",
            "a-.b",
            "ab--cd.com",
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert!(!hostname(bad), "{bad}");
        }
        assert!(hostname("xn--bcher-kva.example") && hostname("example.com."));
        assert!(!email("a@b@example.com") && email("\"a@b\"@example.com"));
    }

    #[test]
    fn formats() {
        assert!(date_time("1963-06-19T08:30:06.283185Z"));
        assert!(date_time("1998-12-31T23:59:60Z"));
        assert!(!date_time("1998-12-31T22:59:60Z"));
        assert!(date_time("1998-12-31T15:59:60.123-08:00"));
        assert!(!date_time("2020-02-30T00:00:00Z"));
        assert!(date("2020-02-29") && !date("2021-02-29") && !date("2020-1-01"));
        assert!(email("joe.bloggs@example.com") && !email("2962") && !email("a..b@x.com"));
        assert!(uuid("2eb8aa08-aa98-11ea-b4aa-73b441d16380") && !uuid("2eb8aa08-aa98-11ea"));
        assert!(uuid("2EB8AA08-AA98-11EA-B4AA-73B441D16380"));
        for bad in [
            "2eb8aa08aaa98-11ea-b4aa-73b441d16380",
            "2eb8aa08-aa98-11ea-b4aa-73b441d1638g",
            "2eb8aa0--aa98-11ea-b4aa-73b441d16380",
            "2eb8aa08-aa98-11ea-b4aa-73b441d16380-",
            "2eb8aa08-aa98-11ea-b4aa-73b441d1638\u{e9}",
        ] {
            assert!(!uuid(bad), "{bad}");
        }
        assert!(ipv4("192.168.0.1") && !ipv4("256.0.0.1") && !ipv4("087.10.0.1"));
        assert!(ipv6("::1") && !ipv6("12345::"));
        assert!(hostname("www.example.com") && !hostname("-a.com") && !hostname(""));
        assert!(uri("http://foo.bar/?baz=qux#quux") && !uri("//foo.bar") && !uri("http:// x"));
        assert!(byte("aGVsbG8=") && !byte("aGVsbG8"));
        assert!(int32(2147483647.0) && !int32(2147483648.0));
    }
}
