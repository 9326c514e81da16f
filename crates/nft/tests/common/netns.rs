//! A small lab of network namespaces for dataplane tests: `n` "host" namespaces, each with a
//! veth whose other end sits on a bridge in a namespace of its own, addresses 10.99.X.(i+1)/24
//! and fd99:X::(i+1)/64 (X unique per lab), TCP and UDP-echo servers in every host, and probes
//! with short timeouts. Every namespace is deleted in `Drop`, so a failing test cleans up too.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub const TCP_PORTS: [u16; 3] = [80, 443, 8080];
pub const UDP_PORTS: [u16; 2] = [53, 5000];
/// How long a probe waits for a connection or an echo.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(400);
/// A probe that did not connect is tried once more with this timeout, so a busy machine (a
/// UDP server thread not scheduled in time) is not taken for a drop. A real drop still fails
/// both; a connection never happens by accident, so successes are not retried.
pub const RETRY_TIMEOUT: Duration = Duration::from_millis(1500);

static LABS: AtomicUsize = AtomicUsize::new(0);

pub fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub struct Lab {
    /// Host namespaces, in order.
    pub hosts: Vec<String>,
    pub bridge: String,
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
    stop: Arc<AtomicBool>,
    servers: Vec<JoinHandle<()>>,
}

/// Runs `f` in a thread that has entered namespace `ns`.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<Result<T, String>> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| format!("setns {path}: {e}"))?;
        Ok(f())
    })
}

impl Lab {
    /// `n` hosts on one bridge, servers started. Panics (after cleaning up) when the lab cannot
    /// be built.
    pub fn new(n: usize) -> Lab {
        let id = LABS.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let subnet = (pid as usize * 7 + id) % 200 + 20;
        let prefix = format!("bh{pid}x{id}");
        let mut lab = Lab {
            hosts: (0..n).map(|i| format!("{prefix}h{i}")).collect(),
            bridge: format!("{prefix}br"),
            v4: (0..n)
                .map(|i| Ipv4Addr::new(10, 99, subnet as u8, i as u8 + 1))
                .collect(),
            v6: (0..n)
                .map(|i| format!("fd99:{subnet}::{}", i + 1).parse().unwrap())
                .collect(),
            stop: Arc::new(AtomicBool::new(false)),
            servers: Vec::new(),
        };
        if let Err(e) = lab.build() {
            drop(lab);
            panic!("cannot build the namespace lab: {e}");
        }
        lab
    }

    fn build(&mut self) -> Result<(), String> {
        let br = self.bridge.clone();
        sh(&["ip", "netns", "add", &br])?;
        sh(&["ip", "-n", &br, "link", "add", "br0", "type", "bridge"])?;
        sh(&["ip", "-n", &br, "link", "set", "br0", "up"])?;
        for (i, ns) in self.hosts.clone().iter().enumerate() {
            sh(&["ip", "netns", "add", ns])?;
            let peer = format!("vb{i}");
            sh(&[
                "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", &peer,
                "netns", &br,
            ])?;
            sh(&["ip", "-n", &br, "link", "set", &peer, "master", "br0", "up"])?;
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", self.v4[i]),
                "dev",
                "eth0",
            ])?;
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/64", self.v6[i]),
                "dev",
                "eth0",
                "nodad",
            ])?;
            sh(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
            self.start_servers(ns)?;
        }
        Ok(())
    }

    fn start_servers(&mut self, ns: &str) -> Result<(), String> {
        for port in TCP_PORTS {
            let stop = self.stop.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            self.servers.push(spawn_in(ns, move || {
                let l = match TcpListener::bind(("::", port)) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.send(Err(format!("tcp {port}: {e}")));
                        return;
                    }
                };
                let _ = l.set_nonblocking(true);
                let _ = tx.send(Ok(()));
                while !stop.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((s, _)) => drop(s),
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            }));
            rx.recv().map_err(|e| e.to_string())??;
        }
        for port in UDP_PORTS {
            let stop = self.stop.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            self.servers.push(spawn_in(ns, move || {
                let s = match UdpSocket::bind(("::", port)) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(format!("udp {port}: {e}")));
                        return;
                    }
                };
                let _ = s.set_read_timeout(Some(Duration::from_millis(20)));
                let _ = tx.send(Ok(()));
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = s.recv_from(&mut buf) {
                        let _ = s.send_to(&buf[..n], from);
                    }
                }
            }));
            rx.recv().map_err(|e| e.to_string())??;
        }
        Ok(())
    }

    /// Forgets every tracked connection in every host. A ruleset accepts the packets of
    /// connections already established, so a probe that reuses the source port of one a
    /// previous ruleset let through would pass whatever the new ruleset says: tests that change
    /// rulesets and probe again call this in between (as `conntrack -F`).
    pub fn forget_connections(&self) -> Result<(), String> {
        for ns in &self.hosts {
            sh(&["ip", "netns", "exec", ns, "conntrack", "-F"])?;
        }
        Ok(())
    }

    /// The nft adapter for host `i`.
    pub fn nft(&self, i: usize) -> bulkhead_nft::Nft {
        bulkhead_nft::Nft::in_netns(&self.hosts[i])
    }

    /// Starts a probe from host `from` to `to:port`: `true` when a TCP connection is
    /// established / a UDP datagram comes back, within [`PROBE_TIMEOUT`].
    pub fn probe(
        &self,
        from: usize,
        to: IpAddr,
        udp: bool,
        port: u16,
    ) -> JoinHandle<Result<bool, String>> {
        self.probe_within(from, to, udp, port, PROBE_TIMEOUT)
    }

    pub fn probe_within(
        &self,
        from: usize,
        to: IpAddr,
        udp: bool,
        port: u16,
        timeout: Duration,
    ) -> JoinHandle<Result<bool, String>> {
        in_netns(&self.hosts[from], move || {
            let dst = SocketAddr::new(to, port);
            if udp {
                let local: SocketAddr = if to.is_ipv4() {
                    "0.0.0.0:0".parse().unwrap()
                } else {
                    "[::]:0".parse().unwrap()
                };
                let Ok(s) = UdpSocket::bind(local) else {
                    return false;
                };
                let _ = s.set_read_timeout(Some(timeout));
                if s.connect(dst).is_err() || s.send(b"bulkhead-probe").is_err() {
                    return false;
                }
                let mut buf = [0u8; 64];
                matches!(s.recv(&mut buf), Ok(n) if &buf[..n] == b"bulkhead-probe")
            } else {
                TcpStream::connect_timeout(&dst, timeout).is_ok()
            }
        })
    }

    /// Runs a probe and waits for it (a failure is retried once, see [`RETRY_TIMEOUT`]).
    pub fn connects(&self, from: usize, to: IpAddr, udp: bool, port: u16) -> bool {
        self.connects_all(&[(from, to, udp, port)])[0]
    }

    /// Runs probes concurrently; those that did not connect are retried once, concurrently,
    /// with [`RETRY_TIMEOUT`].
    pub fn connects_all(&self, probes: &[(usize, IpAddr, bool, u16)]) -> Vec<bool> {
        let run = |ps: &[(usize, IpAddr, bool, u16)], t: Duration| -> Vec<bool> {
            let hs: Vec<_> = ps
                .iter()
                .map(|&(f, to, udp, port)| self.probe_within(f, to, udp, port, t))
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("probe thread").expect("probe setns"))
                .collect()
        };
        let mut got = run(probes, PROBE_TIMEOUT);
        let again: Vec<usize> = (0..probes.len()).filter(|&i| !got[i]).collect();
        let retry: Vec<_> = again.iter().map(|&i| probes[i]).collect();
        for (i, ok) in again.into_iter().zip(run(&retry, RETRY_TIMEOUT)) {
            got[i] = ok;
        }
        got
    }
}

fn spawn_in(ns: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    let h = in_netns(ns, f);
    std::thread::spawn(move || {
        let _ = h.join();
    })
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for s in self.servers.drain(..) {
            let _ = s.join();
        }
        for ns in self.hosts.iter().chain(std::iter::once(&self.bridge)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
