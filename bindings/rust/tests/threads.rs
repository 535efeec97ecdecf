//! Thread settings (C ABI 1.1). Its own test binary: the process-wide count is global state.

use descent::{sys, Optimizer};

#[test]
fn process_wide_count_round_trips_and_rejects_too_many() {
    assert!(descent::num_threads() >= 1);
    descent::set_num_threads(3).unwrap();
    assert_eq!(descent::num_threads(), 3);

    let err = descent::set_num_threads(1 << 40).unwrap_err();
    assert_eq!(err.status(), sys::DESCENT_ERR_OUT_OF_RANGE);
    assert!(err.message().contains("at most"), "{err}");
    assert_eq!(descent::num_threads(), 3, "a refused count changes nothing");

    descent::set_num_threads(0).unwrap();
    assert!(descent::num_threads() >= 1);
}

#[test]
fn optimizer_count_round_trips_and_rejects_too_many() {
    let mut opt = Optimizer::new("adam").unwrap();
    assert_eq!(opt.num_threads().unwrap(), 0, "default: follow the process-wide count");
    opt.set_num_threads(2).unwrap();
    assert_eq!(opt.num_threads().unwrap(), 2);

    let err = opt.set_num_threads(usize::MAX).unwrap_err();
    assert_eq!(err.status(), sys::DESCENT_ERR_OUT_OF_RANGE);
    assert!(err.message().contains("at most"), "{err}");
    assert_eq!(opt.num_threads().unwrap(), 2, "a refused count changes nothing");

    // On a multi optimizer the setting reaches every group.
    let mut multi = Optimizer::new("multi").unwrap();
    multi.add_group("sgd", None).unwrap();
    multi.set_num_threads(4).unwrap();
    assert_eq!(multi.group(0).unwrap().num_threads().unwrap(), 4);
}
