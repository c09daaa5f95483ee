//! Test hosts with addresses of their own: one network namespace per
//! member, each joined by a veth pair to a bridge in the root namespace.
//! The bridge holds the subnet's first address, so the suite's clients
//! reach every member from the root namespace, and a member's firewall
//! (see [`crate::faults`]) can cut it off from its peers alone. Where the
//! host's firewall filters bridged traffic (Docker sets FORWARD to DROP
//! and the kernel hands bridged packets to iptables), one rule of ours lets
//! the bridge forward between its own ports.
//!
//! Owns: creating the namespaces, links and addresses, and removing them
//! whatever happens (on drop, so a panic or an interrupted run cleans up
//! too). Must never: touch a namespace, link or address it did not create;
//! so it refuses to start when one of its names or its subnet is in use.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

/// The first member's host number in the subnet (`a.b.c.11`, `.12`, ...).
const FIRST_MEMBER_HOST: u8 = 11;
/// The bridge's host number: where the clients' traffic comes from.
const BRIDGE_HOST: u8 = 1;
/// The most hosts one subnet holds after the first member's host number.
pub const HOSTS_MAX: usize = 200;
/// Linux limits interface names to 15 bytes.
const INTERFACE_NAME_MAX: usize = 15;

/// Why the hosts could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("{what} is already in use on this machine; choose another name or subnet (nothing was changed)")]
    Taken { what: String },
    #[error(
        "the name prefix {prefix:?} gives interface names longer than {INTERFACE_NAME_MAX} bytes"
    )]
    NameTooLong { prefix: String },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
}

/// What this machine needs for hosts: root, `ip` and `iptables-restore`.
/// `None` when all is there, else what is missing.
pub fn missing_requirements() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("network namespaces need root".to_owned());
    }
    for tool in ["ip", "iptables-restore"] {
        let runs = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !runs {
            return Some(format!(
                "`{tool}` is not installed (Debian: iproute2, iptables)"
            ));
        }
    }
    None
}

/// Runs `program args`, turning a failure into an error that names it.
pub(crate) fn run_command(program: &str, args: &[&str]) -> Result<String, HostsError> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| HostsError::Command {
            command: format!("{program} {}", args.join(" ")),
            detail: error.to_string(),
        })?;
    if !output.status.success() {
        return Err(HostsError::Command {
            command: format!("{program} {}", args.join(" ")),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A name prefix and a /24 subnet no one on this machine uses: the prefix
/// from this process's id, the subnet the first `10.213.x.0/24` without an
/// address here, searched from an offset the process id picks (so runs
/// started at once rarely reach for the same one).
pub fn free_names() -> Result<(String, [u8; 3]), HostsError> {
    let pid = std::process::id();
    let prefix = format!("rk{}", pid % 100_000);
    let addresses = run_command("ip", &["-o", "-4", "addr", "show"])?;
    let offset = (pid % 256) as usize;
    let subnet = (0..=255u8)
        .cycle()
        .skip(offset)
        .take(256)
        .map(|third| [10, 213, third])
        .find(|subnet| !addresses.contains(&subnet_text(*subnet)))
        .ok_or_else(|| HostsError::Taken {
            what: "every subnet 10.213.x.0/24".to_owned(),
        })?;
    Ok((prefix, subnet))
}

fn subnet_text(subnet: [u8; 3]) -> String {
    format!("{}.{}.{}.", subnet[0], subnet[1], subnet[2])
}

/// The namespaces, bridge and links of one run; removed on drop.
#[derive(Debug)]
pub struct Hosts {
    prefix: String,
    subnet: [u8; 3],
    count: usize,
    /// Namespaces made so far (a failed creation removes only these).
    namespaces_made: usize,
    bridge_made: bool,
    forward_rule_made: bool,
}

impl Hosts {
    /// Makes `count` hosts named `<prefix>1..` on `subnet`.0/24, with a
    /// bridge `<prefix>br` at `.1`. Refuses if any name or the subnet is in
    /// use; on a failure part-way, removes what it made.
    pub fn create(prefix: &str, subnet: [u8; 3], count: usize) -> Result<Hosts, HostsError> {
        assert!(
            (1..=HOSTS_MAX).contains(&count),
            "between 1 and {HOSTS_MAX} hosts fit the subnet"
        );
        let mut hosts = Hosts {
            prefix: prefix.to_owned(),
            subnet,
            count,
            namespaces_made: 0,
            bridge_made: false,
            forward_rule_made: false,
        };
        if hosts.veth(count).len() > INTERFACE_NAME_MAX || hosts.bridge().len() > INTERFACE_NAME_MAX
        {
            return Err(HostsError::NameTooLong {
                prefix: prefix.to_owned(),
            });
        }
        hosts.refuse_if_taken()?;
        hosts.make()?;
        Ok(hosts)
    }

    fn refuse_if_taken(&self) -> Result<(), HostsError> {
        let namespaces = run_command("ip", &["netns", "list"])?;
        let taken_namespace = (0..self.count)
            .map(|index| self.namespace(index))
            .find(|name| {
                namespaces
                    .lines()
                    .any(|line| line.split_whitespace().next() == Some(name.as_str()))
            });
        if let Some(name) = taken_namespace {
            return Err(HostsError::Taken {
                what: format!("network namespace {name}"),
            });
        }
        let links = std::iter::once(self.bridge()).chain((0..self.count).map(|i| self.veth(i)));
        for link in links {
            if Path::new("/sys/class/net").join(&link).exists() {
                return Err(HostsError::Taken {
                    what: format!("network interface {link}"),
                });
            }
        }
        let addresses = run_command("ip", &["-o", "-4", "addr", "show"])?;
        if addresses.contains(&subnet_text(self.subnet)) {
            return Err(HostsError::Taken {
                what: format!("subnet {}0/24", subnet_text(self.subnet)),
            });
        }
        Ok(())
    }

    fn make(&mut self) -> Result<(), HostsError> {
        let bridge = self.bridge();
        run_command("ip", &["link", "add", &bridge, "type", "bridge"])?;
        self.bridge_made = true;
        let bridge_address = format!("{}/24", self.bridge_address());
        run_command("ip", &["addr", "add", &bridge_address, "dev", &bridge])?;
        run_command("ip", &["link", "set", &bridge, "up"])?;
        let rule = self.forward_rule("-I");
        run_command(
            "iptables",
            &rule.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
        self.forward_rule_made = true;
        for index in 0..self.count {
            let namespace = self.namespace(index);
            run_command("ip", &["netns", "add", &namespace])?;
            self.namespaces_made += 1;
            let veth = self.veth(index);
            run_command(
                "ip",
                &[
                    "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
                    &namespace,
                ],
            )?;
            run_command("ip", &["link", "set", &veth, "master", &bridge])?;
            run_command("ip", &["link", "set", &veth, "up"])?;
            let address = format!("{}/24", self.address(index));
            self.exec(index, "ip", &["addr", "add", &address, "dev", "eth0"])?;
            self.exec(index, "ip", &["link", "set", "eth0", "up"])?;
            self.exec(index, "ip", &["link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// The host firewall rule that lets the bridge forward between its
    /// ports, for `action` `-I` (insert) or `-D` (delete).
    fn forward_rule(&self, action: &str) -> Vec<String> {
        let bridge = self.bridge();
        [
            action, "FORWARD", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Host `index`'s namespace name.
    pub fn namespace(&self, index: usize) -> String {
        format!("{}{}", self.prefix, index + 1)
    }

    /// Host `index`'s address.
    pub fn address(&self, index: usize) -> Ipv4Addr {
        let host = FIRST_MEMBER_HOST + u8::try_from(index).expect("at most HOSTS_MAX hosts");
        Ipv4Addr::new(self.subnet[0], self.subnet[1], self.subnet[2], host)
    }

    /// Where the clients' traffic comes from.
    pub fn bridge_address(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.subnet[0], self.subnet[1], self.subnet[2], BRIDGE_HOST)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }

    fn veth(&self, index: usize) -> String {
        format!("{}v{}", self.prefix, index + 1)
    }

    /// Runs `program args` inside host `index`'s namespace.
    pub fn exec(&self, index: usize, program: &str, args: &[&str]) -> Result<String, HostsError> {
        let namespace = self.namespace(index);
        let mut full = vec!["netns", "exec", namespace.as_str(), program];
        full.extend_from_slice(args);
        run_command("ip", &full)
    }

    /// A `Command` that runs `program` inside host `index`'s namespace: `ip
    /// netns exec` enters it and executes `program` in place, so the child's
    /// pid is the program's own.
    pub fn command(&self, index: usize, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace(index)])
            .arg(program);
        command
    }
}

impl Drop for Hosts {
    /// Removes what `create` made: each namespace (which takes its veth
    /// pair along), then the bridge. Errors are reported, not raised, so a
    /// panicking run still cleans up the rest.
    fn drop(&mut self) {
        for index in 0..self.namespaces_made {
            if let Err(error) = run_command("ip", &["netns", "del", &self.namespace(index)]) {
                eprintln!("chaos: cleaning up: {error}");
            }
        }
        if self.forward_rule_made {
            let rule = self.forward_rule("-D");
            let rule: Vec<&str> = rule.iter().map(String::as_str).collect();
            if let Err(error) = run_command("iptables", &rule) {
                eprintln!("chaos: cleaning up: {error}");
            }
        }
        if self.bridge_made {
            if let Err(error) = run_command("ip", &["link", "del", &self.bridge()]) {
                eprintln!("chaos: cleaning up: {error}");
            }
        }
    }
}
