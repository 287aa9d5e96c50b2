//! The rules as the service uses them: every row of SPEC.md's table, the
//! rules file's mistakes named by key, and the arithmetic's properties.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap here is a failed test

use std::path::Path;

use alloy_primitives::U256;
use haven_common::money::{WEI_PER_HNV, Wei};
use haven_messages::{
    Booking, CoachingMilestone, Contribution, EventAttendance, PartnerEvent, ReferralSuccess,
    Review,
};
use proptest::prelude::*;

use super::{DEFAULT_RULES, MAX_REASON_LEN, Rule, RuleError, Rules};

fn rules() -> Rules {
    Rules::default_rules().expect("the shipped rules are valid")
}

fn hnv(n: u128) -> Wei {
    Wei::from_hnv(n).unwrap()
}

/// HNV written as a decimal, e.g. "7.5", to wei.
fn hnv_text(text: &str) -> Wei {
    Wei::parse(text).unwrap()
}

fn booking(price: &str, nights: u32) -> PartnerEvent {
    PartnerEvent::AuroraBookingCreated(Booking {
        booking_id: "b".into(),
        guest_id: "g".into(),
        guest_email: None,
        total_price: price.into(),
        nights,
        check_in: None,
        check_out: None,
    })
}

fn review(rating: u8) -> PartnerEvent {
    PartnerEvent::AuroraReviewSubmitted(Review {
        review_id: "r".into(),
        booking_id: None,
        guest_id: "g".into(),
        rating,
    })
}

fn attendance(event_type: &str, attended: bool) -> PartnerEvent {
    PartnerEvent::TribeEventAttendance(EventAttendance {
        event_id: "e".into(),
        attendee_id: "u".into(),
        event_name: None,
        event_type: event_type.into(),
        attended,
        timestamp: None,
    })
}

fn contribution(kind: &str, quality: Option<&str>) -> PartnerEvent {
    PartnerEvent::TribeContribution(Contribution {
        contribution_id: "c".into(),
        user_id: "u".into(),
        contribution_type: kind.into(),
        quality_score: quality.map(str::to_owned),
    })
}

fn coaching(tier: &str) -> PartnerEvent {
    PartnerEvent::TribeCoachingMilestone(CoachingMilestone {
        user_id: "u".into(),
        milestone_name: "m".into(),
        tier: tier.into(),
    })
}

fn referral(tier: &str) -> PartnerEvent {
    PartnerEvent::TribeReferralSuccess(ReferralSuccess {
        referrer_id: "a".into(),
        referred_id: "b".into(),
        tier: tier.into(),
    })
}

fn paid(event: &PartnerEvent) -> Option<(Rule, Wei)> {
    rules()
        .evaluate(event)
        .unwrap()
        .map(|grant| (grant.rule, grant.amount))
}

// ------------------------------------------------ one test per table row

#[test]
fn booking_pays_2_per_cad_times_1_2_above_one_night() {
    assert_eq!(paid(&booking("100.00", 2)), Some((Rule::Booking, hnv(240))));
    assert_eq!(paid(&booking("100.0", 1)), Some((Rule::Booking, hnv(200))));
    assert_eq!(
        paid(&booking("99.99", 3)),
        Some((Rule::Booking, hnv_text("239.976")))
    );
}

#[test]
fn booking_completed_and_cancelled_and_staking_started_pay_nothing_themselves() {
    let r = rules();
    for event in [
        PartnerEvent::AuroraBookingCompleted(haven_messages::BookingRef {
            booking_id: "b".into(),
            guest_id: "g".into(),
        }),
        PartnerEvent::AuroraBookingCancelled(haven_messages::BookingCancellation {
            booking_id: "b".into(),
            guest_id: "g".into(),
            cancellation_reason: None,
        }),
        PartnerEvent::TribeStakingStarted(haven_messages::StakingStarted {
            stake_id: "s".into(),
            user_id: "u".into(),
            amount_wei: 1,
        }),
    ] {
        assert_eq!(r.evaluate(&event), Ok(None));
    }
}

#[test]
fn review_pays_50_from_rating_4() {
    assert_eq!(paid(&review(4)), Some((Rule::Review, hnv(50))));
    assert_eq!(paid(&review(5)), Some((Rule::Review, hnv(50))));
    assert_eq!(paid(&review(3)), None);
    assert_eq!(paid(&review(1)), None);
}

#[test]
fn event_attendance_pays_by_type_and_nothing_when_absent() {
    for (kind, amount) in [
        ("wisdom_circle", 100),
        ("workshop", 75),
        ("networking", 50),
        ("general", 25),
        ("karaoke", 25),
    ] {
        assert_eq!(
            paid(&attendance(kind, true)),
            Some((Rule::EventAttendance, hnv(amount))),
            "{kind}"
        );
    }
    assert_eq!(paid(&attendance("wisdom_circle", false)), None);
}

#[test]
fn contribution_pays_by_type_times_clamped_quality() {
    for (kind, amount) in [
        ("post", 10),
        ("comment", 5),
        ("resource", 15),
        ("guide", 25),
        ("unknown", 5),
        ("poem", 5),
    ] {
        assert_eq!(
            paid(&contribution(kind, None)),
            Some((Rule::Contribution, hnv(amount))),
            "{kind}"
        );
    }
    let guide = |q: &str| paid(&contribution("guide", Some(q))).map(|(_, w)| w);
    assert_eq!(guide("1.5"), Some(hnv_text("37.5")));
    assert_eq!(guide("0"), Some(hnv_text("12.5")), "clamped up to 0.5");
    assert_eq!(guide("0.2"), Some(hnv_text("12.5")));
    assert_eq!(guide("9"), Some(hnv(50)), "clamped down to 2.0");
    assert_eq!(guide("1.0"), Some(hnv(25)));
}

#[test]
fn coaching_milestone_pays_by_tier() {
    for (tier, amount) in [("basic", 100), ("intermediate", 175), ("advanced", 250)] {
        assert_eq!(
            paid(&coaching(tier)),
            Some((Rule::CoachingMilestone, hnv(amount)))
        );
    }
    assert!(matches!(
        rules().evaluate(&coaching("platinum")),
        Err(RuleError::NoRule { .. })
    ));
}

#[test]
fn referral_pays_the_referrer_by_tier() {
    for (tier, amount) in [("basic", 100), ("silver", 250), ("gold", 500)] {
        assert_eq!(paid(&referral(tier)), Some((Rule::Referral, hnv(amount))));
    }
    assert!(rules().evaluate(&referral("bronze")).is_err());
}

#[test]
fn staking_pays_a_tenth_a_year_in_52_parts() {
    // 520 HNV x 10% / 52 = 1 HNV a week.
    assert_eq!(rules().staking_interest(hnv(520)), Ok(Some(hnv(1))));
    // 1000 HNV: 1.923076923076923076... HNV, rounded down to the wei.
    assert_eq!(
        rules().staking_interest(hnv(1000)),
        Ok(Some(Wei::from_wei(1_923_076_923_076_923_076)))
    );
    assert_eq!(rules().staking_interest(Wei::from_wei(519)), Ok(None));
}

// ------------------------------------------------ the rules file

#[test]
fn rule_names_fit_the_contracts_reason() {
    for rule in Rule::ALL {
        let name = rule.as_str();
        assert!(name.is_ascii() && !name.is_empty() && name.len() <= MAX_REASON_LEN);
    }
    assert_eq!(rules().version(), 1);
}

fn invalid(text: &str) -> String {
    Rules::from_toml(text, "test.toml").unwrap_err().to_string()
}

fn shipped_with(from: &str, to: &str) -> String {
    assert!(DEFAULT_RULES.contains(from), "{from}");
    DEFAULT_RULES.replacen(from, to, 1)
}

#[test]
fn mistakes_are_named_by_key() {
    let err = invalid(&shipped_with("multiplier = \"1.2\"", "multiplier = 1.2"));
    assert!(
        err.contains("`booking.multiplier`") && err.contains("float"),
        "{err}"
    );
    let err = invalid(&shipped_with(
        "multiplier = \"1.2\"",
        "multiplier = \"1,2\"",
    ));
    assert!(err.contains("`booking.multiplier` is malformed"), "{err}");
    let err = invalid(&shipped_with("workshop = 75", "workshop = -75"));
    assert!(err.contains("`event_attendance.types.workshop`"), "{err}");
    let err = invalid(&shipped_with("workshop = 75", "Workshop = 75"));
    assert!(err.contains("lower-case"), "{err}");
    let err = invalid(&shipped_with("min_rating = 4", "min_rating = 6"));
    assert!(
        err.contains("`review.min_rating` must be between 1 and 5"),
        "{err}"
    );
    let err = invalid(&shipped_with(
        "quality_min = \"0.5\"",
        "quality_min = \"3\"",
    ));
    assert!(err.contains("`contribution.quality_min`"), "{err}");
    let err = invalid(&shipped_with("version = 1", "version = 0"));
    assert!(err.contains("`version`"), "{err}");
    let err = invalid(&shipped_with(
        "periods_per_year = 52",
        "periods_per_year = 0",
    ));
    assert!(err.contains("`staking.periods_per_year`"), "{err}");
    let err = invalid(&shipped_with("[review]", "[reviews]"));
    assert!(err.starts_with("rules file test.toml: line"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    let err = invalid(&shipped_with(
        "hnv_per_cad = 2\n",
        "hnv_per_cad = 2\nbonus = 3\n",
    ));
    assert!(err.contains("bonus"), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let err = Rules::load(Some(Path::new("/no/such/rules.toml"))).unwrap_err();
    assert!(err.to_string().contains("/no/such/rules.toml"));
}

#[test]
fn operators_can_add_a_default_tier() {
    let text = shipped_with(
        "[referral.tiers]",
        "[referral]\ndefault = 1\n\n[referral.tiers]",
    );
    let r = Rules::from_toml(&text, "t").unwrap();
    assert_eq!(
        r.evaluate(&referral("bronze")).unwrap().map(|g| g.amount),
        Some(hnv(1))
    );
}

// ------------------------------------------------ properties

/// A decimal with up to 18 decimals, as webhook-ingress writes them.
fn price() -> impl Strategy<Value = (u128, u32, String)> {
    (0u128..100_000_000, 0u32..=18, any::<u64>()).prop_map(|(whole, scale, frac)| {
        let frac = u128::from(frac) % 10u128.pow(scale);
        let text = if scale == 0 {
            whole.to_string()
        } else {
            format!("{whole}.{frac:0w$}", w = scale as usize)
        };
        (whole * 10u128.pow(scale) + frac, scale, text)
    })
}

proptest! {
    /// The booking reward is exactly floor(price x 2 x (1.2 if nights > 1)) in
    /// wei, computed here independently in integers.
    #[test]
    fn booking_is_exact_and_rounded_down((mantissa, scale, text) in price(), nights in 1u32..30) {
        let got = rules().evaluate(&booking(&text, nights)).unwrap().map_or(0, |g| g.amount.as_wei());
        // wei = mantissa / 10^scale x 2 x 10^18 (x 12/10)
        let (num, den) = if nights > 1 {
            (U256::from(mantissa) * U256::from(24u8) * U256::from(WEI_PER_HNV), U256::from(10u128.pow(scale)) * U256::from(10u8))
        } else {
            (U256::from(mantissa) * U256::from(2u8) * U256::from(WEI_PER_HNV), U256::from(10u128.pow(scale)))
        };
        prop_assert_eq!(U256::from(got), num / den);
    }

    /// Quality is clamped: a post pays between 5 and 20 HNV whatever the
    /// score, more for a higher score, and exactly 10 x score inside the range.
    #[test]
    fn quality_is_clamped_and_monotonic(a in 0u64..100_000, b in 0u64..100_000) {
        let pay = |q: u64| {
            let text = format!("{}.{:03}", q / 1000, q % 1000);
            rules().evaluate(&contribution("post", Some(&text))).unwrap().unwrap().amount
        };
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(pay(lo) <= pay(hi));
        for q in [a, b] {
            let amount = pay(q);
            prop_assert!(amount >= hnv(5) && amount <= hnv(20));
            if (500..=2000).contains(&q) {
                prop_assert_eq!(amount.as_wei(), u128::from(q) * 10 * WEI_PER_HNV / 1000);
            }
        }
    }

    /// Staking interest is exactly floor(stake / 520) wei: a tenth a year, 52 times.
    #[test]
    fn staking_interest_is_exact(stake in 0u128..=Wei::SUPPLY_CAP.as_wei()) {
        let got = rules().staking_interest(Wei::from_wei(stake)).unwrap();
        prop_assert_eq!(got.map_or(0, Wei::as_wei), stake / 520);
    }

    /// No input that parses produces a negative, fractional or oversized
    /// amount: amounts are whole wei in a u128, never above the supply cap,
    /// and zero is reported as "nothing" (the database refuses zero rewards).
    #[test]
    fn amounts_are_whole_positive_wei((_, _, text) in price(), nights in 1u32..365, kind in "[a-z_]{1,12}", q in price()) {
        let r = rules();
        for event in [booking(&text, nights), contribution(&kind, Some(&q.2)), attendance(&kind, true)] {
            if let Some(grant) = r.evaluate(&event).unwrap() {
                prop_assert!(!grant.amount.is_zero());
                prop_assert!(grant.amount <= Wei::SUPPLY_CAP);
            }
        }
    }
}
