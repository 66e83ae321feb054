use super::*;

const NOW: i64 = 1_796_126_400; // 2026-12-01T12:00:00Z, a Tuesday

fn budgets(cap: u64) -> Budgets {
    Budgets::new(BudgetsConfig {
        default: Some(Budget {
            cap_nanousd: cap,
            window: BudgetWindow::Daily,
            warn_at_percent: Some(80),
        }),
        agents: Default::default(),
        default_max_output_tokens: 4096,
    })
}

#[test]
fn windows() {
    assert_eq!(
        window_bounds(BudgetWindow::Daily, NOW),
        (1_796_083_200, 1_796_169_600)
    );
    // Monday 2026-11-30 to Monday 2026-12-07.
    assert_eq!(
        window_bounds(BudgetWindow::Weekly, NOW),
        (1_795_996_800, 1_796_601_600)
    );
    // 2026-12-01 to 2027-01-01.
    assert_eq!(
        window_bounds(BudgetWindow::Monthly, NOW),
        (1_796_083_200, 1_798_761_600)
    );
    let (s, e) = window_bounds(BudgetWindow::Monthly, 1_771_000_000); // Feb 2026
    assert_eq!(e - s, 28 * 86_400);
    assert_eq!(civil_from_days(days_from_civil(2028, 2, 29)), (2028, 2, 29));
}

#[test]
fn reserve_settle_release() {
    let b = budgets(100);
    let Decision::Reserved(r) = b.reserve("a", 60, NOW) else {
        panic!()
    };
    assert!(matches!(b.reserve("a", 50, NOW), Decision::Refused(_)));
    let st = r.settle(20);
    assert_eq!((st.spent_nanousd, st.reserved_nanousd), (20, 0));
    let Decision::Reserved(r2) = b.reserve("a", 80, NOW) else {
        panic!()
    };
    drop(r2); // released
    match b.reserve("a", 81, NOW) {
        Decision::Refused(e) => {
            assert_eq!(e.committed_nanousd, 20);
            assert_eq!(e.resets_at_s, 1_796_169_600);
        }
        other => panic!("{other:?}"),
    }
    // A new day starts from zero.
    assert!(matches!(
        b.reserve("a", 100, NOW + 86_400),
        Decision::Reserved(_)
    ));
    // No budget configured: unlimited.
    assert!(matches!(
        budgets_none().reserve("a", u64::MAX, NOW),
        Decision::Unlimited
    ));
}

fn budgets_none() -> Budgets {
    Budgets::new(BudgetsConfig::default())
}

#[test]
fn concurrent_reservations_never_exceed_the_cap() {
    let b = Arc::new(budgets(10 * 7));
    let admitted = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..64 {
            s.spawn(|| {
                if let Decision::Reserved(r) = b.reserve("agent", 7, NOW) {
                    admitted.fetch_add(1, Ordering::Relaxed);
                    std::thread::yield_now();
                    r.settle(7);
                }
            });
        }
    });
    let st = &b.status(NOW)[0];
    assert!(st.spent_nanousd <= 70, "{st:?}");
    assert_eq!(st.spent_nanousd, admitted.load(Ordering::Relaxed) * 7);
    assert_eq!(st.reserved_nanousd, 0);
}

#[test]
fn preload_counts_recorded_spend() {
    let b = budgets(100);
    b.preload("a", 95, NOW);
    assert!(matches!(b.reserve("a", 10, NOW), Decision::Refused(_)));
    assert_eq!(b.window_start("a", NOW), Some(1_796_083_200));
}

fn daily(cap: u64, window: BudgetWindow) -> BudgetsConfig {
    BudgetsConfig {
        agents: [(
            "a".to_string(),
            Budget {
                cap_nanousd: cap,
                window,
                warn_at_percent: None,
            },
        )]
        .into(),
        ..Default::default()
    }
}

#[test]
fn a_reload_keeps_spend_under_the_new_cap_and_a_new_window_starts_empty() {
    let b = Budgets::new(daily(100, BudgetWindow::Daily));
    let Decision::Reserved(held) = b.reserve("a", 30, NOW) else {
        panic!()
    };
    let Decision::Reserved(r) = b.reserve("a", 50, NOW) else {
        panic!()
    };
    r.settle(50);
    // Lower cap: 50 spent + 30 held leave 10 under 90.
    let lower = b.reconfigured(daily(90, BudgetWindow::Daily));
    assert!(matches!(lower.reserve("a", 11, NOW), Decision::Refused(_)));
    // The hold taken under the old config settles into the same window.
    held.settle(0);
    assert!(matches!(lower.reserve("a", 40, NOW), Decision::Reserved(_)));
    assert_eq!(lower.status(NOW)[0].cap_nanousd, 90);

    // Another window kind: the caller preloads it from the store; it does not inherit
    // the daily one's counts.
    assert!(lower.window_changes("a", &daily(90, BudgetWindow::Monthly)));
    assert!(!lower.window_changes("a", &daily(10, BudgetWindow::Daily)));
    assert!(!lower.window_changes("a", &BudgetsConfig::default()));
    let monthly = lower.reconfigured(daily(90, BudgetWindow::Monthly));
    assert!(matches!(
        monthly.reserve("a", 90, NOW),
        Decision::Reserved(_)
    ));
    // Removed: unlimited, and no longer listed.
    let none = monthly.reconfigured(BudgetsConfig::default());
    assert!(matches!(
        none.reserve("a", u64::MAX, NOW),
        Decision::Unlimited
    ));
    assert!(none.status(NOW).is_empty());
}
