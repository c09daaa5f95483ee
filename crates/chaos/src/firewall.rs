//! The members' firewalls under the network faults in force. Faults may
//! overlap (a partition while another member drops packets), so each
//! host's rules are made from every network fault in force, and healing one
//! fault rewrites the rules from those left: it never lifts another's.
//!
//! Owns: which network faults are in force and each host's rules. Must
//! never: leave a rule of a healed fault, or drop one of a fault in force.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::Stdio;

use crate::faults::FaultError;
use crate::hosts::Hosts;

/// A network fault, as the firewalls carry it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkFault {
    /// Packets from `.0` to `.1` are dropped, for each pair.
    Cut(BTreeSet<(usize, usize)>),
    /// `member` drops `percent`% of the packets from and to its peers.
    Loss { member: usize, percent: u64 },
}

/// The network faults in force.
#[derive(Debug, Default)]
pub struct Firewalls {
    in_force: Vec<NetworkFault>,
}

impl Firewalls {
    /// Puts `fault` in force on every host.
    pub fn add(&mut self, fault: NetworkFault, hosts: &Hosts) -> Result<(), FaultError> {
        self.in_force.push(fault);
        self.write(hosts)
    }

    /// Lifts `fault` (one instance of it), keeping the others in force.
    pub fn remove(&mut self, fault: &NetworkFault, hosts: &Hosts) -> Result<(), FaultError> {
        self.lift(fault);
        self.write(hosts)
    }

    fn lift(&mut self, fault: &NetworkFault) {
        if let Some(position) = self.in_force.iter().position(|held| held == fault) {
            self.in_force.remove(position);
        }
    }

    fn write(&self, hosts: &Hosts) -> Result<(), FaultError> {
        let addresses: Vec<Ipv4Addr> = (0..hosts.count()).map(|host| hosts.address(host)).collect();
        for host in 0..hosts.count() {
            set_firewall(hosts, host, &self.rules(host, &addresses))?;
        }
        Ok(())
    }

    /// Host `host`'s rules (iptables-restore syntax, one rule a line), the
    /// hosts having `addresses`.
    fn rules(&self, host: usize, addresses: &[Ipv4Addr]) -> String {
        let mut rules = String::new();
        for fault in &self.in_force {
            match fault {
                NetworkFault::Cut(cut) => {
                    for &(from, to) in cut {
                        if to == host {
                            rules.push_str(&format!("-A INPUT -s {} -j DROP\n", addresses[from]));
                        }
                        if from == host {
                            rules.push_str(&format!("-A OUTPUT -d {} -j DROP\n", addresses[to]));
                        }
                    }
                }
                NetworkFault::Loss { member, percent } if *member == host => {
                    let probability = *percent as f64 / 100.0;
                    for (_, address) in addresses
                        .iter()
                        .enumerate()
                        .filter(|(peer, _)| *peer != host)
                    {
                        rules.push_str(&format!(
                            "-A INPUT -s {address} -m statistic --mode random --probability {probability:.2} -j DROP\n\
                             -A OUTPUT -d {address} -m statistic --mode random --probability {probability:.2} -j DROP\n"
                        ));
                    }
                }
                NetworkFault::Loss { .. } => {}
            }
        }
        rules
    }
}

/// Replaces host `member`'s filter table with `rules` (iptables-restore
/// syntax, one rule per line), in one call.
fn set_firewall(hosts: &Hosts, member: usize, rules: &str) -> Result<(), FaultError> {
    let namespace = hosts.namespace(member);
    let failed = |detail: String| FaultError::Firewall {
        namespace: namespace.clone(),
        detail,
    };
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &namespace, "iptables-restore"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| failed(error.to_string()))?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    stdin
        .write_all(format!("*filter\n{rules}COMMIT\n").as_bytes())
        .map_err(|error| failed(error.to_string()))?;
    drop(stdin);
    let output = child
        .wait_with_output()
        .map_err(|error| failed(error.to_string()))?;
    if !output.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses() -> Vec<Ipv4Addr> {
        (11..14).map(|host| Ipv4Addr::new(10, 0, 0, host)).collect()
    }

    fn in_force(faults: &[NetworkFault]) -> Firewalls {
        Firewalls {
            in_force: faults.to_vec(),
        }
    }

    #[test]
    fn overlapping_faults_add_up_and_lifting_one_keeps_the_other() {
        let cut = NetworkFault::Cut([(0, 1), (1, 0)].into());
        let loss = NetworkFault::Loss {
            member: 1,
            percent: 25,
        };
        let both = in_force(&[cut.clone(), loss.clone()]);
        let rules = both.rules(1, &addresses());
        assert!(rules.contains("-A INPUT -s 10.0.0.11 -j DROP"), "{rules}");
        assert!(rules.contains("-A OUTPUT -d 10.0.0.11 -j DROP"), "{rules}");
        assert!(
            rules.contains("-A INPUT -s 10.0.0.13 -m statistic --mode random --probability 0.25"),
            "{rules}"
        );
        let mut after_the_cut = both;
        after_the_cut.lift(&cut);
        assert_eq!(
            after_the_cut.rules(1, &addresses()),
            in_force(&[loss]).rules(1, &addresses())
        );
        assert_eq!(
            after_the_cut.rules(0, &addresses()),
            "",
            "m1 is no longer cut"
        );
    }

    #[test]
    fn a_member_drops_only_its_own_share_and_never_its_own_packets() {
        let rules = in_force(&[NetworkFault::Loss {
            member: 0,
            percent: 10,
        }]);
        assert_eq!(rules.rules(2, &addresses()), "");
        let own = rules.rules(0, &addresses());
        assert!(!own.contains("10.0.0.11"), "{own}");
        assert_eq!(
            own.lines().count(),
            4,
            "in and out for each of two peers: {own}"
        );
    }
}
