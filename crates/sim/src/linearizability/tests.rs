//! Hand-written histories with a known answer, one per kind of anomaly the
//! checker exists to catch, plus the ones it must not flag.

use super::*;

const KEY: KvKey = 7;

fn returned(
    client_id: u64,
    input: KvInput,
    output: KvOutput,
    call_time: u64,
    return_time: u64,
) -> KvOperation {
    Operation {
        client_id,
        input,
        call_time,
        outcome: Outcome::Returned {
            output,
            return_time,
        },
    }
}

fn put(client_id: u64, value: KvValue, call_time: u64, return_time: u64) -> KvOperation {
    let input = KvInput::Put { key: KEY, value };
    returned(client_id, input, KvOutput::PutDone, call_time, return_time)
}

fn get(client_id: u64, value: Option<KvValue>, call_time: u64, return_time: u64) -> KvOperation {
    let input = KvInput::Get { key: KEY };
    returned(
        client_id,
        input,
        KvOutput::Value(value),
        call_time,
        return_time,
    )
}

fn cas(
    client_id: u64,
    expected: Option<KvValue>,
    new: KvValue,
    succeeded: bool,
    call_time: u64,
    return_time: u64,
) -> KvOperation {
    let input = KvInput::Cas {
        key: KEY,
        expected,
        new,
    };
    let output = KvOutput::CasDone { succeeded };
    returned(client_id, input, output, call_time, return_time)
}

fn put_unknown(client_id: u64, value: KvValue, call_time: u64) -> KvOperation {
    Operation {
        client_id,
        input: KvInput::Put { key: KEY, value },
        call_time,
        outcome: Outcome::Unknown,
    }
}

fn verdict(history: &[KvOperation]) -> Verdict {
    check(&KvModel, history, &Limits::default()).expect("hand-written histories are well formed")
}

fn violation(history: &[KvOperation]) -> Violation {
    match verdict(history) {
        Verdict::NotLinearizable(violation) => violation,
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn sequential_history_is_linearizable() {
    let history = [
        get(1, None, 0, 10),
        put(1, 1, 20, 30),
        get(2, Some(1), 40, 50),
        cas(1, Some(1), 2, true, 60, 70),
        cas(2, Some(1), 3, false, 80, 90),
        get(1, Some(2), 100, 110),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn overlapping_operations_may_take_effect_in_either_order() {
    // The read overlaps both writes and sees the later-called one first; the
    // second read sees the earlier-called one: both writes must have taken
    // effect in the order 2, 1.
    let history = [
        put(1, 1, 0, 100),
        put(2, 2, 10, 90),
        get(3, Some(2), 20, 50),
        get(3, Some(1), 120, 130),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn stale_read_after_a_completed_write_is_caught() {
    let history = [put(1, 1, 0, 10), put(1, 2, 20, 30), get(2, Some(1), 40, 50)];
    let violation = violation(&history);
    assert_eq!(violation.key, format!("{KEY:?}"));
    assert_eq!(violation.longest_prefix, vec![0, 1]);
    assert_eq!(violation.next_candidates, vec![2]);
    assert!(violation.explanation.contains("#2 client 2"), "{violation}");
}

#[test]
fn lost_write_is_caught() {
    let history = [put(1, 1, 0, 10), get(2, None, 20, 30)];
    let violation = violation(&history);
    assert_eq!(violation.longest_prefix, vec![0]);
    assert_eq!(violation.next_candidates, vec![1]);
}

#[test]
fn cas_that_succeeds_twice_on_the_same_expected_value_is_caught() {
    let history = [
        put(1, 0, 0, 10),
        cas(2, Some(0), 1, true, 20, 50),
        cas(3, Some(0), 2, true, 25, 55),
    ];
    let violation = violation(&history);
    assert_eq!(violation.longest_prefix.len(), 2, "{violation}");
}

#[test]
fn concurrent_cas_with_one_winner_is_linearizable() {
    let history = [
        put(1, 0, 0, 10),
        cas(2, Some(0), 1, true, 20, 50),
        cas(3, Some(0), 2, false, 25, 55),
        get(1, Some(1), 60, 70),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn unknown_put_observed_later_is_linearizable() {
    // The client of the put crashed; long after, a read sees its value.
    let history = [
        put(1, 1, 0, 10),
        put_unknown(2, 2, 20),
        get(3, Some(1), 30, 40),
        get(3, Some(2), 1_000, 1_010),
        get(3, Some(2), 2_000, 2_010),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn unknown_put_never_observed_is_linearizable() {
    let history = [
        put(1, 1, 0, 10),
        put_unknown(2, 2, 20),
        get(3, Some(1), 30, 40),
        get(3, Some(1), 1_000, 1_010),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn unknown_put_cannot_take_effect_before_its_call() {
    let history = [get(1, Some(2), 0, 10), put_unknown(2, 2, 20)];
    let violation = violation(&history);
    assert_eq!(violation.next_candidates, vec![0]);
}

#[test]
fn unknown_put_takes_effect_at_most_once() {
    // After the unknown put's value is seen and then overwritten, it cannot
    // reappear.
    let history = [
        put_unknown(1, 2, 0),
        get(2, Some(2), 10, 20),
        put(2, 3, 30, 40),
        get(2, Some(2), 50, 60),
    ];
    violation(&history);
}

#[test]
fn read_of_a_value_never_written_is_caught() {
    let history = [put(1, 1, 0, 10), get(2, Some(99), 5, 30)];
    let violation = violation(&history);
    assert!(
        violation.explanation.contains("Value(Some(99))"),
        "{violation}"
    );
}

#[test]
fn calls_and_returns_at_the_same_instant_count_as_concurrent() {
    // The read is called at the very tick the put returns, and still sees the
    // old value: allowed, since the two operations touch.
    let history = [put(1, 1, 0, 10), get(2, None, 10, 20)];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn keys_are_checked_independently() {
    let mut history = vec![put(1, 1, 0, 10)];
    // The same values on another key do not satisfy a read of `KEY`.
    history.push(returned(
        2,
        KvInput::Put {
            key: KEY + 1,
            value: 2,
        },
        KvOutput::PutDone,
        20,
        30,
    ));
    history.push(get(3, Some(2), 40, 50));
    let violation = violation(&history);
    assert_eq!(violation.key, format!("{KEY:?}"));
    assert_eq!(violation.longest_prefix, vec![0]);
    assert_eq!(violation.next_candidates, vec![2]);
}

#[test]
fn violation_on_a_later_key_is_reported_though_an_earlier_key_is_undecided() {
    let history = [
        returned(
            1,
            KvInput::Put { key: 1, value: 1 },
            KvOutput::PutDone,
            0,
            10,
        ),
        put(1, 1, 0, 10),
        get(2, None, 20, 30),
    ];
    let limits = Limits {
        states_explored_per_key_max: 1,
    };
    let verdict = check(&KvModel, &history, &limits).expect("well formed");
    assert!(matches!(verdict, Verdict::NotLinearizable(_)), "{verdict}");
}

#[test]
fn search_gives_up_at_the_bound_with_unknown() {
    let history = [
        put(1, 1, 0, 100),
        put(2, 2, 0, 100),
        put(3, 3, 0, 100),
        get(4, Some(3), 200, 210),
    ];
    let limits = Limits {
        states_explored_per_key_max: 2,
    };
    match check(&KvModel, &history, &limits).expect("well formed") {
        Verdict::Unknown { reason } => {
            assert!(reason.contains("states_explored_per_key_max"), "{reason}");
        }
        other => panic!("expected Unknown, got {other:?}"),
    }
}

#[test]
fn return_not_after_call_is_an_error() {
    let history = [put(1, 1, 0, 10), put(2, 2, 20, 20)];
    let error = check(&KvModel, &history, &Limits::default()).unwrap_err();
    assert_eq!(
        error,
        HistoryError::ReturnNotAfterCall {
            operation_index: 1,
            client_id: 2,
            call_time: 20,
            return_time: 20,
        }
    );
    assert!(error.to_string().contains("#1 (client 2)"), "{error}");
}

#[test]
fn output_of_the_wrong_kind_is_an_error() {
    let history = [returned(
        1,
        KvInput::Get { key: KEY },
        KvOutput::PutDone,
        0,
        10,
    )];
    let error = check(&KvModel, &history, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            error,
            HistoryError::OutputDoesNotFitInput {
                operation_index: 0,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn empty_history_is_linearizable() {
    assert_eq!(verdict(&[]), Verdict::Linearizable);
}

#[test]
fn explanation_shows_only_the_end_of_a_long_prefix() {
    let mut history: Vec<KvOperation> = (0..30)
        .map(|index| put(1, index, index * 10, index * 10 + 5))
        .collect();
    history.push(get(2, Some(0), 1_000, 1_010));
    let violation = violation(&history);
    assert_eq!(violation.longest_prefix.len(), 30);
    assert!(
        violation.explanation.contains("the last 10 shown"),
        "{violation}"
    );
    assert!(violation.explanation.contains("#29 "), "{violation}");
    assert!(!violation.explanation.contains("#19 "), "{violation}");
}

#[test]
fn unanswered_reads_are_left_out_of_the_explanation() {
    let history = [
        put(1, 1, 0, 10),
        Operation {
            client_id: 3,
            input: KvInput::Get { key: KEY },
            call_time: 15,
            outcome: Outcome::Unknown,
        },
        put_unknown(4, 3, 16),
        put(1, 2, 20, 30),
        get(2, Some(1), 40, 50),
    ];
    let violation = violation(&history);
    // The unknown put is part of the deepest prefix found; the unknown read
    // could come next in real time but could not change anything.
    assert!(violation.longest_prefix.contains(&2), "{violation}");
    assert_eq!(violation.next_candidates, vec![4], "{violation}");
}

#[test]
fn two_unknown_operations_in_a_row_can_both_take_effect() {
    // Only put 1 followed by the CAS from 1 to 2 explains the read of 2.
    let history = [
        put_unknown(1, 1, 0),
        Operation {
            client_id: 2,
            input: KvInput::Cas {
                key: KEY,
                expected: Some(1),
                new: 2,
            },
            call_time: 5,
            outcome: Outcome::Unknown,
        },
        get(3, Some(2), 10, 20),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
}

#[test]
fn unknown_put_overwritten_by_another_unknown_put_is_not_needed() {
    // Put 1 then put 2 reaches the same state as put 2 alone; the checker
    // skips the pair but must still find the read of 1 explained by put 1
    // alone, and the read of 2 by put 2.
    let history = [
        put_unknown(1, 1, 0),
        put_unknown(2, 2, 0),
        get(3, Some(1), 10, 20),
        get(3, Some(2), 30, 40),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
    let stale = [
        put_unknown(1, 1, 0),
        put_unknown(2, 2, 0),
        get(3, Some(2), 10, 20),
        get(3, Some(1), 30, 40),
        get(3, Some(2), 50, 60),
    ];
    violation(&stale);
}
