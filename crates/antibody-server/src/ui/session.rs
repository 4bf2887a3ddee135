//! Dashboard sessions: a random id in an HttpOnly, SameSite=Strict cookie maps to the API
//! key the person signed in with, held here in memory only. Sessions therefore end when the
//! server restarts (people sign in again); the table is bounded and entries expire.
//!
//! Each session has its own CSRF token, sent back in a hidden field of every form; a POST
//! whose field does not match is refused. The sign-in form, before any session exists, uses
//! a double-submit cookie instead.

use antibody_core::TimestampMs;
use std::collections::HashMap;
use std::sync::Mutex;

/// The session cookie's name.
pub const COOKIE: &str = "ab_session";
/// The sign-in form's double-submit cookie.
pub const SIGNIN_COOKIE: &str = "ab_signin";
/// A session unused this long ends.
pub const IDLE_MS: i64 = 30 * 60 * 1000;
/// Every session ends this long after sign-in, used or not.
pub const MAX_AGE_MS: i64 = 12 * 60 * 60 * 1000;
/// Sessions held at once; signing in beyond it ends the least recently used one.
pub const MAX_SESSIONS: usize = 10_000;

/// What a session remembers.
#[derive(Clone)]
pub struct Session {
    /// The API key, kept server-side only: every request re-authenticates it, so a key
    /// deleted or expired ends its sessions too.
    pub secret: String,
    pub csrf: String,
    created: TimestampMs,
    used: TimestampMs,
}

/// The session table.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    /// The listener speaks TLS: cookies get `Secure`.
    pub secure: bool,
}

/// 32 random bytes as hex: session ids and CSRF tokens.
pub fn token() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    Ok(hex::encode(b))
}

impl Sessions {
    pub fn new(secure: bool) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            secure,
        }
    }

    /// Starts a session for `secret`; returns its id and CSRF token.
    pub fn start(
        &self,
        secret: String,
        now: TimestampMs,
    ) -> Result<(String, String), getrandom::Error> {
        let (id, csrf) = (token()?, token()?);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| live(s, now));
        if map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert(
            id.clone(),
            Session {
                secret,
                csrf: csrf.clone(),
                created: now,
                used: now,
            },
        );
        Ok((id, csrf))
    }

    /// The live session `id`, marked used; an expired one is removed.
    pub fn get(&self, id: &str, now: TimestampMs) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.get_mut(id)?;
        if !live(s, now) {
            map.remove(id);
            return None;
        }
        s.used = now;
        Some(s.clone())
    }

    pub fn end(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// `Set-Cookie` for a new session.
    pub fn cookie(&self, name: &str, value: &str) -> String {
        format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict{}",
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// `Set-Cookie` that removes cookie `name`.
    pub fn clear_cookie(&self, name: &str) -> String {
        format!(
            "{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if self.secure { "; Secure" } else { "" }
        )
    }
}

fn live(s: &Session, now: TimestampMs) -> bool {
    now - s.used < IDLE_MS && now - s.created < MAX_AGE_MS
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name && !v.is_empty()).then_some(v)
    })
}

/// Compares two tokens in time independent of where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_at_their_maximum_age() {
        let s = Sessions::new(false);
        let (id, csrf) = s.start("k".into(), 0).unwrap();
        assert_eq!(csrf.len(), 64);
        assert_eq!(s.get(&id, IDLE_MS - 1).unwrap().secret, "k");
        assert!(s.get(&id, 2 * IDLE_MS - 2).is_some(), "use extends it");
        assert!(s.get(&id, 4 * IDLE_MS).is_none(), "idle too long");
        assert!(s.get(&id, 4 * IDLE_MS).is_none());
        let (id, _) = s.start("k".into(), 0).unwrap();
        let mut t = 0;
        while t < MAX_AGE_MS - IDLE_MS {
            t += IDLE_MS / 2;
            assert!(s.get(&id, t).is_some(), "at {t}");
        }
        assert!(s.get(&id, MAX_AGE_MS).is_none(), "too old however used");
    }

    #[test]
    fn the_table_is_bounded_and_ending_forgets() {
        let s = Sessions::new(true);
        let (first, _) = s.start("a".into(), 0).unwrap();
        for i in 1..=MAX_SESSIONS as i64 {
            s.start("b".into(), i).unwrap();
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.get(&first, 10).is_none(), "least recently used went");
        let (id, _) = s.start("c".into(), 20).unwrap();
        s.end(&id);
        assert!(s.get(&id, 21).is_none());
        assert!(s.cookie(COOKIE, "x").ends_with("; Secure"));
    }

    #[test]
    fn cookies_and_tokens_parse() {
        let h = "a=1; ab_session=abc;other=x";
        assert_eq!(cookie_value(h, COOKIE), Some("abc"));
        assert_eq!(cookie_value(h, "other"), Some("x"));
        assert_eq!(cookie_value("ab_session=", COOKIE), None);
        assert_eq!(cookie_value("xab_session=1", COOKIE), None);
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
    }
}
