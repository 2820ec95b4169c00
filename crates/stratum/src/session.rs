//! The Stratum V1 client session as a state machine with no I/O: bytes from
//! the pool go in, events and bytes for the pool come out. The mio driver
//! only moves bytes; every protocol behaviour is testable without sockets.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::codec::{Frame, LineCodec};
use super::messages::{Incoming, Notify, RejectReason, request, response};
use super::text::sanitize;
use kiln_work::{Difficulty, Job, Target};

/// BIP320's general-purpose version bits: what kiln asks to roll.
pub const BIP320_MASK: u32 = 0x1fff_e000;

/// What a session is told at start.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub user: String,
    /// Sent in `mining.authorize` only; never logged.
    pub pass: String,
    pub agent: String,
    /// Ask for version rolling (BIP310) with this mask.
    pub version_rolling: Option<u32>,
    pub suggest_difficulty: Option<f64>,
    /// A subscription id from an earlier connection, to resume the session.
    pub resume: Option<String>,
    pub extranonce_subscribe: bool,
}

impl SessionConfig {
    pub fn new(user: &str, pass: &str) -> Self {
        SessionConfig {
            user: user.into(),
            pass: pass.into(),
            agent: concat!("kiln/", env!("CARGO_PKG_VERSION")).into(),
            version_rolling: Some(BIP320_MASK),
            suggest_difficulty: None,
            resume: None,
            extranonce_subscribe: true,
        }
    }
}

/// A share ready for `mining.submit`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Share {
    pub job_id: String,
    /// The extranonce1 the share was mined with: a share is only valid on a
    /// connection with the same extranonce1.
    pub extranonce1: Vec<u8>,
    pub extranonce2: Vec<u8>,
    pub ntime: u32,
    pub nonce: u32,
    /// The rolled bits (`version & mask`) when version rolling is on.
    pub version_bits: Option<u32>,
}

/// What the session tells its owner. Every piece of pool text in it (messages,
/// reject reasons, errors, hosts) has been through [`sanitize`], so it can be
/// logged as it is; job ids stay raw (they go back in `mining.submit`) and are
/// sanitized where they are logged.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Subscribed {
        session_id: Option<String>,
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
    },
    Authorized {
        ok: bool,
        error: String,
    },
    /// The mask the pool granted (`None`: refused or unsupported).
    VersionMask(Option<u32>),
    /// A job ready to mine (the session is subscribed).
    Job(Job),
    Difficulty(f64),
    /// New extranonce for jobs from the next notify on.
    Extranonce {
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
    },
    ShareResult {
        id: u64,
        accepted: bool,
        reason: Option<(RejectReason, String)>,
    },
    Reconnect {
        host: Option<String>,
        port: Option<u16>,
        wait_s: u64,
    },
    Message(String),
    /// The pool broke the protocol; the driver should log and reconnect.
    Protocol(String),
}

#[derive(Clone, Debug)]
enum Pending {
    Configure,
    Subscribe,
    Authorize,
    ExtranonceSubscribe,
    SuggestDifficulty,
    Submit,
}

/// One connection's protocol state.
pub struct Session {
    cfg: SessionConfig,
    codec: LineCodec,
    out: Vec<u8>,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    extranonce1: Option<Vec<u8>>,
    extranonce2_size: usize,
    next_extranonce: Option<(Vec<u8>, usize)>,
    difficulty: f64,
    version_mask: u32,
    authorized: bool,
    /// A notify that arrived before the subscription finished.
    early_notify: Option<Notify>,
    last_notify: Option<Notify>,
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Self {
        Session {
            cfg,
            codec: LineCodec::new(),
            out: Vec::new(),
            next_id: 1,
            pending: HashMap::new(),
            extranonce1: None,
            extranonce2_size: 0,
            next_extranonce: None,
            difficulty: 1.0,
            version_mask: 0,
            authorized: false,
            early_notify: None,
            last_notify: None,
        }
    }

    fn send(&mut self, method: &str, params: Value, what: Pending) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.out.extend(request(id, method, params));
        self.pending.insert(id, what);
        id
    }

    /// Queues the opening handshake: configure (BIP310 wants it first),
    /// subscribe (resuming when we have a session id), authorize, then the
    /// suggested difficulty if any.
    pub fn start(&mut self) {
        if let Some(mask) = self.cfg.version_rolling {
            let params = json!([["version-rolling"], {"version-rolling.mask": format!("{mask:08x}"), "version-rolling.min-bit-count": 2}]);
            self.send("mining.configure", params, Pending::Configure);
        }
        let params = match &self.cfg.resume {
            Some(sid) => json!([self.cfg.agent, sid]),
            None => json!([self.cfg.agent]),
        };
        self.send("mining.subscribe", params, Pending::Subscribe);
        let params = json!([self.cfg.user, self.cfg.pass]);
        self.send("mining.authorize", params, Pending::Authorize);
        // After authorize: pools apply a suggestion to the authorized worker,
        // and some ignore one that comes before. A whole number goes as a
        // JSON integer (`1024`, not `1024.0`), which strict pools require.
        if let Some(d) = self.cfg.suggest_difficulty {
            let d = if d.fract() == 0.0 && (1.0..9.0e15).contains(&d) { json!(d as u64) } else { json!(d) };
            self.send("mining.suggest_difficulty", json!([d]), Pending::SuggestDifficulty);
        }
    }

    /// Queues a share; returns the request id its answer will carry.
    pub fn submit(&mut self, s: &Share) -> u64 {
        let mut params = vec![
            json!(self.cfg.user),
            json!(s.job_id),
            json!(hex::encode(&s.extranonce2)),
            json!(format!("{:08x}", s.ntime)),
            json!(format!("{:08x}", s.nonce)),
        ];
        if let Some(v) = s.version_bits {
            params.push(json!(format!("{v:08x}")));
        }
        self.send("mining.submit", Value::Array(params), Pending::Submit)
    }

    /// Bytes waiting to be written to the pool.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    pub fn extranonce1(&self) -> Option<&[u8]> {
        self.extranonce1.as_deref()
    }

    pub fn is_authorized(&self) -> bool {
        self.authorized
    }

    pub fn difficulty(&self) -> f64 {
        self.difficulty
    }

    /// Feeds bytes from the pool.
    pub fn receive(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        for frame in self.codec.feed(bytes) {
            match frame {
                Frame::Line(line) => match Incoming::parse(&line) {
                    Ok(msg) => self.handle(msg, &mut events),
                    Err(e) => events.push(Event::Protocol(format!("{} in line: {}", sanitize(&e), sanitize(&line)))),
                },
                Frame::TooLong { len } => events.push(Event::Protocol(format!(
                    "line of {len} bytes exceeds the {} byte limit",
                    super::codec::MAX_LINE
                ))),
                Frame::NotUtf8 => events.push(Event::Protocol("line is not UTF-8".into())),
            }
        }
        events
    }

    fn job_from(&self, n: &Notify) -> Option<Job> {
        let en1 = self.extranonce1.clone()?;
        Some(Job {
            job_id: n.job_id.clone(),
            prev_hash: n.prevhash.0,
            coinb1: n.coinb1.clone(),
            coinb2: n.coinb2.clone(),
            merkle_branch: n.merkle_branch.clone(),
            version: n.version,
            nbits: n.nbits,
            ntime: n.ntime,
            clean_jobs: n.clean_jobs,
            extranonce1: en1,
            extranonce2_size: self.extranonce2_size,
            share_target: Target::from_difficulty(Difficulty(self.difficulty)).unwrap_or(Target::DIFF1),
            version_mask: self.version_mask,
        })
    }

    fn handle(&mut self, msg: Incoming, ev: &mut Vec<Event>) {
        match msg {
            Incoming::Response { id, result, error } => {
                let Some(what) = self.pending.remove(&id) else {
                    ev.push(Event::Protocol(format!("answer to unknown request id {id}")));
                    return;
                };
                self.on_response(what, id, result, error, ev);
            }
            Incoming::Call { id, method, params } => self.on_call(id, &method, params, ev),
        }
    }

    fn on_response(&mut self, what: Pending, id: u64, result: Value, error: Value, ev: &mut Vec<Event>) {
        match what {
            Pending::Configure => {
                let granted = result.get("version-rolling").and_then(Value::as_bool).filter(|ok| *ok).and_then(|_| {
                    result.get("version-rolling.mask")?.as_str().and_then(|m| u32::from_str_radix(m, 16).ok())
                });
                // The pool's mask is the limit: never roll bits we did not ask for.
                self.version_mask = granted.map_or(0, |m| m & self.cfg.version_rolling.unwrap_or(0));
                ev.push(Event::VersionMask((self.version_mask != 0).then_some(self.version_mask)));
            }
            Pending::Subscribe => {
                let r = result.as_array();
                let en1 = r.and_then(|a| a.get(1)?.as_str()).and_then(|h| hex::decode(h).ok());
                let size = r.and_then(|a| a.get(2)?.as_u64());
                match (en1, size) {
                    (Some(en1), Some(size)) if (1..=16).contains(&size) => {
                        let session_id = r.and_then(|a| {
                            a.first()?.as_array()?.iter().find_map(|sub| {
                                let s = sub.as_array()?;
                                (s.first()?.as_str()? == "mining.notify")
                                    .then(|| s.get(1)?.as_str().map(String::from))?
                            })
                        });
                        self.extranonce1 = Some(en1.clone());
                        self.extranonce2_size = size as usize;
                        ev.push(Event::Subscribed { session_id, extranonce1: en1, extranonce2_size: size as usize });
                        if self.cfg.extranonce_subscribe {
                            self.send("mining.extranonce.subscribe", json!([]), Pending::ExtranonceSubscribe);
                        }
                        if let Some(n) = self.early_notify.take() {
                            self.emit_job(n, ev);
                        }
                    }
                    _ => ev.push(Event::Protocol(format!(
                        "bad subscribe result {} (error {})",
                        sanitize(&result.to_string()),
                        sanitize(&error.to_string())
                    ))),
                }
            }
            Pending::Authorize => {
                self.authorized = result.as_bool() == Some(true);
                ev.push(Event::Authorized {
                    ok: self.authorized,
                    error: if error.is_null() { String::new() } else { sanitize(&error.to_string()) },
                });
            }
            Pending::ExtranonceSubscribe | Pending::SuggestDifficulty => {}
            Pending::Submit => {
                let accepted = result.as_bool() == Some(true) && error.is_null();
                let reason = (!accepted).then(|| {
                    let (r, msg) = RejectReason::from_error(&error);
                    (r, sanitize(&msg))
                });
                ev.push(Event::ShareResult { id, accepted, reason });
            }
        }
    }

    fn emit_job(&mut self, n: Notify, ev: &mut Vec<Event>) {
        if let Some((en1, size)) = self.next_extranonce.take() {
            self.extranonce1 = Some(en1);
            self.extranonce2_size = size;
        }
        match self.job_from(&n) {
            Some(job) => ev.push(Event::Job(job)),
            None => self.early_notify = Some(n.clone()),
        }
        self.last_notify = Some(n);
    }

    fn on_call(&mut self, id: Value, method: &str, params: Value, ev: &mut Vec<Event>) {
        match method {
            "mining.notify" => match Notify::parse(&params) {
                Ok(n) => self.emit_job(n, ev),
                Err(e) => ev.push(Event::Protocol(format!("bad mining.notify: {}", sanitize(&e)))),
            },
            "mining.set_difficulty" => match params.get(0).and_then(Value::as_f64) {
                Some(d) if d.is_finite() && d > 0.0 => {
                    self.difficulty = d;
                    ev.push(Event::Difficulty(d));
                }
                _ => ev.push(Event::Protocol(format!("bad mining.set_difficulty {}", sanitize(&params.to_string())))),
            },
            "mining.set_extranonce" => {
                let en1 = params.get(0).and_then(Value::as_str).and_then(|h| hex::decode(h).ok());
                let size = params.get(1).and_then(Value::as_u64).filter(|s| (1..=16).contains(s));
                match (en1, size) {
                    (Some(en1), Some(size)) => {
                        self.next_extranonce = Some((en1.clone(), size as usize));
                        ev.push(Event::Extranonce { extranonce1: en1, extranonce2_size: size as usize });
                    }
                    _ => {
                        ev.push(Event::Protocol(format!("bad mining.set_extranonce {}", sanitize(&params.to_string()))))
                    }
                }
            }
            "mining.set_version_mask" => {
                if let Some(m) = params.get(0).and_then(Value::as_str).and_then(|m| u32::from_str_radix(m, 16).ok()) {
                    self.version_mask = m & self.cfg.version_rolling.unwrap_or(0);
                    ev.push(Event::VersionMask((self.version_mask != 0).then_some(self.version_mask)));
                }
            }
            "client.reconnect" => {
                let host = params.get(0).and_then(Value::as_str).filter(|h| !h.is_empty()).map(sanitize);
                let port = params
                    .get(1)
                    .and_then(|p| p.as_u64().or_else(|| p.as_str()?.parse().ok()))
                    .and_then(|p| u16::try_from(p).ok())
                    // Port 0 is no port: stay on the current one.
                    .filter(|p| *p != 0);
                let wait_s = params.get(2).and_then(|w| w.as_u64().or_else(|| w.as_str()?.parse().ok())).unwrap_or(0);
                ev.push(Event::Reconnect { host, port, wait_s });
            }
            "client.show_message" => {
                ev.push(Event::Message(sanitize(params.get(0).and_then(Value::as_str).unwrap_or(""))));
            }
            "mining.ping" => self.out.extend(response(&id, json!("pong"))),
            "client.get_version" => {
                let agent = self.cfg.agent.clone();
                self.out.extend(response(&id, json!(agent)));
            }
            other => {
                if !id.is_null() {
                    self.out.extend(format!("{}\n", json!({"id": id, "result": null, "error": [20, format!("unsupported method {other}"), null]})).into_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session past subscribe and authorize (no version rolling).
    fn ready() -> Session {
        let mut s = Session::new(SessionConfig { version_rolling: None, ..SessionConfig::new("u", "p") });
        s.start();
        let _ = s.take_output();
        let lines = format!(
            "{}\n{}\n",
            json!({"id": 1, "result": [[["mining.notify", "abc"]], "0a0b0c0d", 4], "error": null}),
            json!({"id": 2, "result": true, "error": null})
        );
        let _ = s.receive(lines.as_bytes());
        let _ = s.take_output();
        s
    }

    fn has_control(s: &str) -> bool {
        s.chars().any(char::is_control)
    }

    #[test]
    fn text_from_the_pool_reaches_events_without_control_characters() {
        let mut s = ready();
        let evil = "hi\u{1b}[2J\u{1b}]0;owned\u{7}\r\nfake log line\u{202e}";
        let mut lines = String::new();
        lines += &format!("{}\n", json!({"id": null, "method": "client.show_message", "params": [evil]}));
        let id = s.submit(&Share {
            job_id: "j".into(),
            extranonce1: vec![],
            extranonce2: vec![0; 4],
            ntime: 0,
            nonce: 0,
            version_bits: None,
        });
        lines += &format!("{}\n", json!({"id": id, "result": null, "error": [23, evil, null]}));
        lines += &format!("{}\n", json!({"id": null, "method": "client.reconnect", "params": [evil, 3333, 0]}));
        lines += &format!("{}\n", json!({"id": null, "method": "mining.set_difficulty", "params": [evil]}));
        lines += "not json \u{1b}[31m red\n";
        let events = s.receive(lines.as_bytes());
        assert_eq!(events.len(), 5, "{events:?}");
        for e in &events {
            let text = match e {
                Event::Message(m) => m.clone(),
                Event::ShareResult { reason: Some((_, m)), .. } => m.clone(),
                Event::Reconnect { host, .. } => host.clone().unwrap_or_default(),
                Event::Protocol(m) => m.clone(),
                other => panic!("unexpected {other:?}"),
            };
            assert!(!has_control(&text) && !text.contains('\u{202e}'), "{e:?}");
        }
    }

    #[test]
    fn sanitize_escapes_and_bounds() {
        assert_eq!(crate::sanitize("plain text"), "plain text");
        assert_eq!(crate::sanitize("a\u{1b}b\nc"), "a\\x1bb\\nc");
        assert!(!has_control(&crate::sanitize("\u{0}\u{7f}\u{9b}\u{2028}")));
        let long = "x".repeat(10_000);
        assert!(crate::sanitize(&long).chars().count() <= crate::text::MAX_SHOWN + 1);
    }
}

#[cfg(test)]
mod reconnect_tests {
    use super::*;

    #[test]
    fn reconnect_to_port_zero_means_the_same_port() {
        let mut s = Session::new(SessionConfig::new("u", "p"));
        s.start();
        let line = format!("{}\n", json!({"id": null, "method": "client.reconnect", "params": ["", 0, 5]}));
        assert_eq!(s.receive(line.as_bytes()), vec![Event::Reconnect { host: None, port: None, wait_s: 5 }]);
    }
}

#[cfg(test)]
mod handshake_tests {
    use super::*;

    fn methods_and_params(s: &mut Session) -> Vec<(String, Value)> {
        String::from_utf8(s.take_output())
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["method"].as_str().unwrap().to_string(), v["params"].clone())
            })
            .collect()
    }

    #[test]
    fn suggest_difficulty_follows_authorize_as_an_integer_when_whole() {
        for (d, want) in [(1024.0, json!(1024)), (0.5, json!(0.5))] {
            let mut s = Session::new(SessionConfig {
                version_rolling: None,
                suggest_difficulty: Some(d),
                ..SessionConfig::new("u", "p")
            });
            s.start();
            let m = methods_and_params(&mut s);
            let names: Vec<&str> = m.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["mining.subscribe", "mining.authorize", "mining.suggest_difficulty"]);
            assert_eq!(m[2].1, json!([want]));
            assert_eq!(m[2].1.to_string(), format!("[{want}]"));
        }
    }
}
