//! `arcana-healthcheck`: the HEALTHCHECK of the container images, which hold no shell and no curl.
//!
//! ```text
//! arcana-healthcheck http [PATH]   GET PATH (default /health/ready) on the REST port of
//!                                  ARCANA_HTTP_ADDR (default 8080); healthy on HTTP 200
//! arcana-healthcheck ops [PATH]    the same on the ops port of any binary: that of
//!                                  ARCANA_METRICS_ADDR, else the default ops port of the
//!                                  arcana binary installed beside this one (an image holds one:
//!                                  arcana 9100, arcana-gateway 9101, arcana-service 9102,
//!                                  arcana-repository 9103, arcana-auth-service 9104,
//!                                  arcana-user-service 9105)
//! arcana-healthcheck tcp [PORT]    a listener on PORT (default: the port of ARCANA_GRPC_ADDR,
//!                                  else 50051)
//! ```
//!
//! Always probes 127.0.0.1 (the server listens on 0.0.0.0 or loopback), gives up after 5 s,
//! exits 0 when healthy, 1 when not (with the reason on stderr), 2 on bad usage. Kubernetes does
//! not use it: the Helm chart declares native HTTP and gRPC probes.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);
const USAGE: &str = "usage: arcana-healthcheck http [PATH] | ops [PATH] | tcp [PORT]";

/// The environment (a parameter, so tests need not change the process's own).
type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The port of a `host:port` setting from the environment, else `default`.
fn port_of(env: Env, var: &str, default: u16) -> Result<u16, String> {
    match env(var) {
        None => Ok(default),
        Some(addr) => addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .ok_or_else(|| format!("{var}={addr} names no port")),
    }
}

/// The default ops port of the one arcana binary in `dir` (this program's directory): what that
/// binary listens on when ARCANA_METRICS_ADDR is not set.
fn sibling_ops_port(dir: Option<&Path>) -> Result<u16, String> {
    let found: Vec<(&str, u16)> = healthcheck::DEFAULT_OPS_ADDRS
        .iter()
        .filter(|(name, _)| dir.is_some_and(|d| d.join(name).is_file()))
        .filter_map(|(name, _)| Some((*name, healthcheck::default_ops_port(name)?)))
        .collect();
    match found.as_slice() {
        [(_, port)] => Ok(*port),
        [] => Err(
            "ARCANA_METRICS_ADDR is not set and no arcana binary is installed beside \
             arcana-healthcheck: set ARCANA_METRICS_ADDR"
                .to_owned(),
        ),
        several => Err(format!(
            "ARCANA_METRICS_ADDR is not set and {} arcana binaries are installed beside \
             arcana-healthcheck (each has its own default ops port): set ARCANA_METRICS_ADDR",
            several.len()
        )),
    }
}

fn connect(port: u16) -> Result<TcpStream, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let tcp = TcpStream::connect_timeout(&addr, TIMEOUT)
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    tcp.set_read_timeout(Some(TIMEOUT))
        .and_then(|()| tcp.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| e.to_string())?;
    Ok(tcp)
}

/// The status code of `GET path` on the local port (HTTP/1.1, the status line only).
fn http_status(port: u16, path: &str) -> Result<u16, String> {
    let mut tcp = connect(port)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: arcana-healthcheck\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes())
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head)
        .map_err(|e| format!("reading the answer: {e}"))?;
    std::str::from_utf8(&head)
        .ok()
        .filter(|h| h.starts_with("HTTP/1."))
        .and_then(|h| h[9..12].parse().ok())
        .ok_or_else(|| "the answer is not HTTP".to_owned())
}

/// `bin_dir`: the directory of this program, where the image installs the binary it checks.
fn check(args: &[String], env: Env, bin_dir: Option<&Path>) -> Result<Result<(), String>, String> {
    let mode = args.first().map(String::as_str).unwrap_or("http");
    match mode {
        "http" | "ops" => {
            let path = args.get(1).map_or("/health/ready", String::as_str);
            if !path.starts_with('/') || path.contains(char::is_whitespace) {
                return Err(format!("bad path {path:?}"));
            }
            let port = match mode {
                "http" => port_of(env, "ARCANA_HTTP_ADDR", 8080)?,
                _ if env("ARCANA_METRICS_ADDR").is_some() => {
                    port_of(env, "ARCANA_METRICS_ADDR", 0)?
                }
                _ => sibling_ops_port(bin_dir)?,
            };
            Ok(match http_status(port, path) {
                Ok(200) => Ok(()),
                Ok(status) => Err(format!("GET {path} answered {status}")),
                Err(e) => Err(e),
            })
        }
        "tcp" => {
            let port = match args.get(1) {
                Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
                None => port_of(env, "ARCANA_GRPC_ADDR", 50051)?,
            };
            Ok(connect(port).map(drop))
        }
        other => Err(format!("unknown check {other:?}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exe = std::env::current_exe().ok();
    let bin_dir = exe.as_deref().and_then(Path::parent);
    match check(&args, &|var| std::env::var(var).ok(), bin_dir) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(why)) => {
            eprintln!("unhealthy: {why}");
            ExitCode::from(1)
        }
        Err(usage) => {
            eprintln!("{usage}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::TcpListener;

    /// A one-shot HTTP server on a free port answering `status`.
    fn serve(status: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes());
        });
        port
    }

    #[test]
    fn http_reads_the_status_line() {
        assert_eq!(http_status(serve("200 OK"), "/health/ready"), Ok(200));
        assert_eq!(
            http_status(serve("503 Service Unavailable"), "/health/ready"),
            Ok(503)
        );
    }

    #[test]
    fn tcp_and_http_fail_on_a_closed_port() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let none = |_: &str| None;
        assert!(
            check(&["tcp".into(), port.to_string()], &none, None)
                .unwrap()
                .is_err()
        );
        let open = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = open.local_addr().unwrap().port();
        assert_eq!(
            check(&["tcp".into(), port.to_string()], &none, None),
            Ok(Ok(()))
        );
        // the default port comes from ARCANA_GRPC_ADDR
        let grpc = move |v: &str| (v == "ARCANA_GRPC_ADDR").then(|| format!("0.0.0.0:{port}"));
        assert_eq!(check(&["tcp".into()], &grpc, None), Ok(Ok(())));
    }

    #[test]
    fn http_and_ops_take_their_port_from_their_setting() {
        let rest = serve("200 OK");
        let env = move |v: &str| (v == "ARCANA_HTTP_ADDR").then(|| format!("0.0.0.0:{rest}"));
        assert_eq!(check(&["http".into()], &env, None), Ok(Ok(())));
        let ops = serve("503 Service Unavailable");
        let env = move |v: &str| (v == "ARCANA_METRICS_ADDR").then(|| format!("127.0.0.1:{ops}"));
        let unhealthy = check(&["ops".into(), "/health/ready".into()], &env, None).unwrap();
        assert_eq!(unhealthy, Err("GET /health/ready answered 503".to_owned()));
    }

    #[test]
    fn ops_defaults_to_the_port_of_the_binary_beside_it() {
        let dir = std::env::temp_dir().join(format!("arcana-healthcheck-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let none = |_: &str| None;
        let unset = check(&["ops".into()], &none, Some(&dir)).unwrap_err();
        assert!(unset.contains("no arcana binary"), "{unset}");
        std::fs::write(dir.join("arcana-healthcheck"), "").unwrap();
        std::fs::write(dir.join("arcana-repository"), "").unwrap();
        assert_eq!(sibling_ops_port(Some(&dir)), Ok(9103));
        std::fs::write(dir.join("arcana-gateway"), "").unwrap();
        let several = sibling_ops_port(Some(&dir)).unwrap_err();
        assert!(several.contains("2 arcana binaries"), "{several}");
        assert!(sibling_ops_port(None).is_err());
        // ARCANA_METRICS_ADDR wins over the binary's default.
        let ops = serve("200 OK");
        let env = move |v: &str| (v == "ARCANA_METRICS_ADDR").then(|| format!("0.0.0.0:{ops}"));
        assert_eq!(check(&["ops".into()], &env, Some(&dir)), Ok(Ok(())));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_usage_is_not_unhealthy() {
        let none = |_: &str| None;
        assert!(check(&["udp".into()], &none, None).is_err());
        assert!(check(&["tcp".into(), "x".into()], &none, None).is_err());
        assert!(check(&["http".into(), "no-slash".into()], &none, None).is_err());
        let bad = |_: &str| Some("nowhere".to_owned());
        assert!(check(&["ops".into()], &bad, None).is_err());
    }
}
