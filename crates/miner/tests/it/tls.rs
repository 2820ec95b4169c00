//! stratum+ssl: kiln verifies the pool's certificate. A TLS front (test-only)
//! terminates TLS on 127.0.0.1 and forwards to the plain test pool.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::stratum::{fast_client, start_miner};
use kiln_testkit::pool::{Behavior, TestPool};

struct TlsFront {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn tls_front(backend: SocketAddr) -> (TlsFront, CertificateDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let cfg = Arc::new(cfg);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let st = Arc::clone(&stop);
    std::thread::spawn(move || {
        while !st.load(Ordering::Acquire) {
            let Ok((client, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let (cfg, st) = (Arc::clone(&cfg), Arc::clone(&st));
            std::thread::spawn(move || {
                let _ = forward(client, backend, cfg, &st);
            });
        }
    });
    (TlsFront { addr, stop }, cert)
}

/// Shuttles bytes between a TLS client and the plain backend until either side closes.
fn forward(
    client: TcpStream,
    backend: SocketAddr,
    cfg: Arc<rustls::ServerConfig>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_millis(5)))?;
    let mut tls = rustls::StreamOwned::new(rustls::ServerConnection::new(cfg).unwrap(), client);
    let mut plain = TcpStream::connect(backend)?;
    plain.set_read_timeout(Some(Duration::from_millis(5)))?;
    let mut buf = [0u8; 16384];
    while !stop.load(Ordering::Acquire) {
        match tls.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => plain.write_all(&buf[..n])?,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
        match plain.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => tls.write_all(&buf[..n])?,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[test]
fn stratum_ssl_mines_with_a_trusted_certificate() {
    let pool = TestPool::start(Behavior::default());
    let (front, cert) = tls_front(pool.addr);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let opts = kiln_miner::source::stratum::ClientOptions { tls_roots: Some(Arc::new(roots)), ..fast_client() };
    let m = start_miner(&[format!("stratum+ssl://127.0.0.1:{}", front.addr.port())], opts, None);
    pool.wait_for("shares over TLS", Duration::from_secs(30), |l| l.valid() >= 5);
    m.stop();
    assert_eq!(pool.log.lock().unwrap().invalid(), 0);
}

#[test]
fn stratum_ssl_refuses_an_untrusted_certificate() {
    let pool = TestPool::start(Behavior::default());
    let (front, _) = tls_front(pool.addr);
    // Default trust anchors (Mozilla's): a self-signed pool certificate fails.
    let m = start_miner(&[format!("stratum+ssl://127.0.0.1:{}", front.addr.port())], fast_client(), None);
    std::thread::sleep(Duration::from_secs(3));
    let stats = m.stats();
    m.stop();
    let l = pool.log.lock().unwrap();
    assert_eq!(l.subscribes.len(), 0, "nothing may reach a pool whose certificate does not verify");
    assert_eq!(stats.snapshot().accepted, 0);
}

/// The refusal is said in plain words, and kiln does not claim to be
/// connected before the certificate verified.
#[test]
fn an_untrusted_certificate_is_reported_in_plain_words() {
    crate::logcap::start();
    let pool = TestPool::start(Behavior::default());
    let (front, _) = tls_front(pool.addr);
    let url = format!("stratum+ssl://127.0.0.1:{}", front.addr.port());
    let m = start_miner(std::slice::from_ref(&url), fast_client(), None);
    std::thread::sleep(Duration::from_secs(2));
    m.stop();
    let lines = crate::logcap::lines_with(&url);
    assert!(lines.iter().any(|l| l.contains("certificate is not trusted")), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("OtherError") || l.contains("InvalidCertificate")), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("connected to")), "connected before verifying: {lines:#?}");
}
