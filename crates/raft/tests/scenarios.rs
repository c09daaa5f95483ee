//! Runs the scenario files in `tests/scenarios/`: each is a script of
//! commands driving an in-memory cluster, each command followed by `----` and
//! the output it must print. A failing scenario reads like a story.
//! `RAFT_SCENARIO_REWRITE=1 cargo test -p raft --test scenarios` rewrites the
//! expected output after an intended change (review the diff!).

mod harness;

use std::fmt::Write as _;
use std::path::Path;

use harness::Cluster;
use raft::{ConfChange, ConfChangeKind, EntryKind, Storage};

struct Block {
    /// Comment lines (starting with `#`) just before the command.
    comments: Vec<String>,
    command: String,
    expected: String,
}

fn parse(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut comments = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let line = line.trim_end();
        if line.starts_with('#') {
            comments.push(line.to_string());
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let separator = lines.next().map(str::trim_end);
        assert_eq!(
            separator,
            Some("----"),
            "command `{line}` must be followed by ----"
        );
        let mut expected = String::new();
        while let Some(output) = lines.peek() {
            if output.trim_end().is_empty() {
                break;
            }
            expected.push_str(output.trim_end());
            expected.push('\n');
            lines.next();
        }
        blocks.push(Block {
            comments: std::mem::take(&mut comments),
            command: line.to_string(),
            expected,
        });
    }
    blocks
}

fn render(blocks: &[Block], outputs: &[String]) -> String {
    let mut text = String::new();
    for (block, output) in blocks.iter().zip(outputs) {
        for comment in &block.comments {
            let _ = writeln!(text, "{comment}");
        }
        let _ = write!(text, "{}\n----\n{output}\n", block.command);
    }
    text
}

fn ids(argument: &str) -> Vec<u64> {
    argument
        .split(',')
        .map(|id| {
            id.parse()
                .unwrap_or_else(|_| panic!("bad member id `{id}`"))
        })
        .collect()
}

fn number(arguments: &[&str], position: usize) -> u64 {
    arguments
        .get(position)
        .unwrap_or_else(|| panic!("missing argument {position}"))
        .parse()
        .unwrap_or_else(|_| panic!("argument {position} must be a number"))
}

/// `add-voter`, `add-learner`, `promote` or `remove`, applied to `node_id`.
fn conf_change(kind: Option<&str>, node_id: u64) -> ConfChange {
    let kind = match kind {
        Some("add-voter") => ConfChangeKind::AddVoter,
        Some("add-learner") => ConfChangeKind::AddLearner,
        Some("promote") => ConfChangeKind::PromoteLearner,
        Some("remove") => ConfChangeKind::RemoveMember,
        other => panic!(
            "conf change kind must be add-voter, add-learner, promote or remove, not {other:?}"
        ),
    };
    ConfChange { kind, node_id }
}

fn describe_conf_change(change: ConfChange) -> String {
    let kind = match change.kind {
        ConfChangeKind::AddVoter => "add-voter",
        ConfChangeKind::AddLearner => "add-learner",
        ConfChangeKind::PromoteLearner => "promote",
        ConfChangeKind::RemoveMember => "remove",
    };
    format!("{kind} {}", change.node_id)
}

fn join_ids(ids: &[u64]) -> String {
    if ids.is_empty() {
        return String::from("-");
    }
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn run_command(cluster: &mut Option<Cluster>, command: &str) -> String {
    let arguments: Vec<&str> = command.split_whitespace().collect();
    if arguments[0] == "cluster" {
        let size = number(&arguments, 1);
        let flags: Vec<String> = arguments[2..].iter().map(|flag| flag.to_string()).collect();
        let has = move |flag: &str| flags.iter().any(|given| given == flag);
        *cluster = Some(Cluster::new(size, move |config| {
            config.pre_vote = !has("pre-vote=false");
            config.check_quorum = !has("check-quorum=false");
            config.forward_to_leader = !has("forward=false");
            if has("one-entry-per-message") {
                config.message_bytes_max = 1;
            }
        }));
        return String::new();
    }
    let cluster = cluster.as_mut().expect("`cluster N` must come first");
    let mut output = String::new();
    match arguments[0] {
        "set-log" => {
            let terms: Vec<u64> = if arguments.len() > 2 {
                ids(arguments[2])
            } else {
                Vec::new()
            };
            let term = arguments
                .iter()
                .find_map(|argument| argument.strip_prefix("term="))
                .map(|term| term.parse().expect("term=N"));
            cluster.set_log(number(&arguments, 1), &terms, term);
        }
        "campaign" => cluster
            .node_mut(number(&arguments, 1))
            .campaign()
            .expect("campaign"),
        "tick" => {
            let ticks = if arguments.len() > 2 {
                number(&arguments, 2)
            } else {
                1
            };
            cluster.tick(number(&arguments, 1), ticks as u32);
        }
        "tick-all" => cluster.tick_all(number(&arguments, 1) as u32),
        "propose" => {
            let id = number(&arguments, 1);
            let result = cluster
                .node_mut(id)
                .propose(arguments[2].as_bytes().to_vec());
            if let Err(error) = result {
                let _ = writeln!(output, "error: {error}");
            }
        }
        "read-index" => {
            let id = number(&arguments, 1);
            if let Err(error) = cluster
                .node_mut(id)
                .read_index(arguments[2].as_bytes().to_vec())
            {
                let _ = writeln!(output, "error: {error}");
            }
        }
        "transfer-leader" => {
            let id = number(&arguments, 1);
            if let Err(error) = cluster.node_mut(id).transfer_leader(number(&arguments, 2)) {
                let _ = writeln!(output, "error: {error}");
            }
        }
        "add-node" => cluster.add_node(number(&arguments, 1)),
        "conf-change" => {
            let id = number(&arguments, 1);
            let change = conf_change(arguments.get(2).copied(), number(&arguments, 3));
            if let Err(error) = cluster.node_mut(id).propose_conf_change(change, Vec::new()) {
                let _ = writeln!(output, "error: {error}");
            }
        }
        "conf" => {
            for (id, node) in &cluster.nodes {
                let conf_state = node.conf_state();
                let _ = writeln!(
                    output,
                    "{id}: voters={} learners={}",
                    join_ids(&conf_state.voters),
                    join_ids(&conf_state.learners)
                );
            }
        }
        "isolate" => cluster.isolate(number(&arguments, 1)),
        "partition" => {
            let groups: Vec<Vec<u64>> = arguments[1..].iter().map(|group| ids(group)).collect();
            cluster.partition(&groups);
        }
        "heal" => cluster.heal(),
        "hold" => cluster.hold(number(&arguments, 1), number(&arguments, 2)),
        "unhold" => cluster.unhold(number(&arguments, 1), number(&arguments, 2)),
        "release" => {
            let count = if arguments.len() > 3 {
                number(&arguments, 3) as usize
            } else {
                usize::MAX
            };
            cluster.release(number(&arguments, 1), number(&arguments, 2), count);
        }
        "release-newest" => cluster.release_newest(number(&arguments, 1), number(&arguments, 2)),
        "held" => {
            for message in cluster.held_messages() {
                let _ = writeln!(output, "{message}");
            }
        }
        "crash" => cluster.crash(number(&arguments, 1)),
        "restart" => cluster.restart(number(&arguments, 1)),
        "compact" => cluster.compact(number(&arguments, 1), number(&arguments, 2)),
        "trace" => cluster.trace_messages = arguments.get(1) == Some(&"on"),
        "stabilize" => cluster.stabilize(),
        "round" => {
            let rounds = if arguments.len() > 1 {
                number(&arguments, 1)
            } else {
                1
            };
            for _ in 0..rounds {
                cluster.round();
            }
        }
        "process-ready" => {
            cluster.process_ready(number(&arguments, 1));
        }
        "status" => {
            for (id, node) in &cluster.nodes {
                let status = node.status();
                let _ = writeln!(
                    output,
                    "{id}: {:?} term={} vote={} commit={} applied={} last={} leader={}",
                    status.soft_state.role,
                    status.hard_state.term,
                    status.hard_state.vote,
                    status.hard_state.commit,
                    status.applied,
                    status.last_index,
                    status.soft_state.leader
                );
            }
        }
        "progress" => {
            for view in cluster.node(number(&arguments, 1)).status().progress {
                let _ = writeln!(
                    output,
                    "{}: match={} next={} {:?}",
                    view.id, view.match_index, view.next_index, view.state
                );
            }
        }
        "log" => {
            let node = cluster.node(number(&arguments, 1));
            let storage = node.storage();
            let first = storage.first_index().expect("first index");
            let last = node.status().last_index;
            if first > 1 {
                let _ = writeln!(output, "snapshot through {}", first - 1);
            }
            let entries = storage
                .entries(first, last + 1, u64::MAX)
                .unwrap_or_default();
            let terms: Vec<String> = entries.iter().map(|entry| entry.term.to_string()).collect();
            let _ = writeln!(output, "terms: {}", terms.join(" "));
        }
        "applied" => {
            let id = number(&arguments, 1);
            let commands = cluster.applied_commands(id);
            let noops = cluster.applied[&id]
                .iter()
                .filter(|entry| entry.kind == EntryKind::Noop)
                .count();
            let _ = write!(
                output,
                "commands: {} (and {noops} no-ops)",
                commands.join(" ")
            );
            let changes: Vec<String> = cluster.applied[&id]
                .iter()
                .filter_map(|entry| match entry.kind {
                    EntryKind::ConfChange(change) => Some(describe_conf_change(change)),
                    EntryKind::Normal | EntryKind::Noop => None,
                })
                .collect();
            if !changes.is_empty() {
                let _ = write!(output, "; conf changes: {}", changes.join(", "));
            }
            output.push('\n');
        }
        other => panic!("unknown scenario command `{other}`"),
    }
    for event in cluster.events.drain(..) {
        let _ = writeln!(output, "{event}");
    }
    output
}

fn run_file(path: &Path, rewrite: bool) -> Result<(), String> {
    let text =
        std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let blocks = parse(&text);
    let mut cluster = None;
    let outputs: Vec<String> = blocks
        .iter()
        .map(|block| run_command(&mut cluster, &block.command))
        .collect();
    if rewrite {
        std::fs::write(path, render(&blocks, &outputs)).map_err(|error| error.to_string())?;
        return Ok(());
    }
    for (block, output) in blocks.iter().zip(&outputs) {
        if &block.expected != output {
            return Err(format!(
                "{}: `{}`\n--- expected\n{}--- got\n{}",
                path.display(),
                block.command,
                block.expected,
                output
            ));
        }
    }
    Ok(())
}

#[test]
fn scenarios() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut paths: Vec<_> = std::fs::read_dir(&directory)
        .expect("scenario directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scenario files found");
    let rewrite = std::env::var_os("RAFT_SCENARIO_REWRITE").is_some();
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|path| run_file(path, rewrite).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rewriting_keeps_comments() {
    let text = "# why\ncluster 1\n----\n\n# and why\nstatus\n----\nold\n";
    let blocks = parse(text);
    let rendered = render(&blocks, &[String::new(), String::from("new\n")]);
    assert_eq!(
        rendered,
        "# why\ncluster 1\n----\n\n# and why\nstatus\n----\nnew\n\n"
    );
}

#[test]
fn a_wrong_expectation_fails() {
    let directory = std::env::temp_dir().join(format!("raft-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("temp dir");
    let path = directory.join("wrong.txt");
    std::fs::write(
        &path,
        "cluster 1\n----\n\ncampaign 1\n----\n\nstatus\n----\n1: Follower term=0\n",
    )
    .expect("write");
    let result = run_file(&path, false);
    std::fs::remove_dir_all(&directory).ok();
    assert!(
        result.is_err(),
        "a scenario with the wrong expected output must fail"
    );
}
