//! The one tagged enum of each queue and the payloads they carry.
//!
//! Partner amounts (prices, stakes, quality scores) are exact decimal strings
//! as validated by webhook-ingress; token amounts are integer wei
//! (see [`crate::wei`]). Nothing here is a float.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::QueueMessage;
use crate::names::{self, QueueSpec};

/// Implements [`QueueMessage`] for a queue enum whose variants each wrap one payload struct.
macro_rules! queue_message {
    ($enum:ident, $queue:expr, $version:expr, $prefix:expr, { $($variant:ident => $kind:literal, $suffix:literal;)+ }) => {
        impl QueueMessage for $enum {
            const QUEUE: QueueSpec = $queue;
            const SCHEMA_VERSION: u16 = $version;
            const KINDS: &'static [&'static str] = &[$($kind),+];

            fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $kind,)+
                }
            }

            fn routing_key(&self) -> String {
                let suffix = match self {
                    $(Self::$variant(_) => $suffix,)+
                };
                format!("{}.{}", $prefix, suffix)
            }
        }
    };
}

// ---------------------------------------------------------------- partner events

/// A signed partner webhook accepted by webhook-ingress, normalized to one spelling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum PartnerEvent {
    /// Aurora: a booking was created.
    #[serde(rename = "aurora.booking_created")]
    AuroraBookingCreated(Booking),
    /// Aurora: a booking was completed.
    #[serde(rename = "aurora.booking_completed")]
    AuroraBookingCompleted(BookingRef),
    /// Aurora: a booking was cancelled.
    #[serde(rename = "aurora.booking_cancelled")]
    AuroraBookingCancelled(BookingCancellation),
    /// Aurora: a guest reviewed a stay.
    #[serde(rename = "aurora.review_submitted")]
    AuroraReviewSubmitted(Review),
    /// Tribe: a member attended an event.
    #[serde(rename = "tribe.event_attendance")]
    TribeEventAttendance(EventAttendance),
    /// Tribe: a member contributed content.
    #[serde(rename = "tribe.contribution")]
    TribeContribution(Contribution),
    /// Tribe: a member started staking.
    #[serde(rename = "tribe.staking_started")]
    TribeStakingStarted(StakingStarted),
    /// Tribe: a member reached a coaching milestone.
    #[serde(rename = "tribe.coaching_milestone")]
    TribeCoachingMilestone(CoachingMilestone),
    /// Tribe: a referral succeeded.
    #[serde(rename = "tribe.referral_success")]
    TribeReferralSuccess(ReferralSuccess),
}

queue_message!(PartnerEvent, names::PARTNER_EVENTS, 1, names::PARTNER_ROUTING_PREFIX, {
    AuroraBookingCreated => "aurora.booking_created", "aurora.booking_created";
    AuroraBookingCompleted => "aurora.booking_completed", "aurora.booking_completed";
    AuroraBookingCancelled => "aurora.booking_cancelled", "aurora.booking_cancelled";
    AuroraReviewSubmitted => "aurora.review_submitted", "aurora.review_submitted";
    TribeEventAttendance => "tribe.event_attendance", "tribe.event_attendance";
    TribeContribution => "tribe.contribution", "tribe.contribution";
    TribeStakingStarted => "tribe.staking_started", "tribe.staking_started";
    TribeCoachingMilestone => "tribe.coaching_milestone", "tribe.coaching_milestone";
    TribeReferralSuccess => "tribe.referral_success", "tribe.referral_success";
});

impl PartnerEvent {
    /// The partner that sent it: `aurora` or `tribe`.
    pub fn partner(&self) -> &'static str {
        match self {
            Self::AuroraBookingCreated(_)
            | Self::AuroraBookingCompleted(_)
            | Self::AuroraBookingCancelled(_)
            | Self::AuroraReviewSubmitted(_) => "aurora",
            Self::TribeEventAttendance(_)
            | Self::TribeContribution(_)
            | Self::TribeStakingStarted(_)
            | Self::TribeCoachingMilestone(_)
            | Self::TribeReferralSuccess(_) => "tribe",
        }
    }

    /// The "once per" key of SPEC.md's rules table: the same key for the same
    /// kind is the same event, rewarded once. Composite keys join their parts
    /// with the ASCII unit separator (U+001F), which no partner id contains
    /// (PostgreSQL text cannot hold a NUL).
    pub fn once_per_key(&self) -> String {
        match self {
            Self::AuroraBookingCreated(b) => b.booking_id.clone(),
            Self::AuroraBookingCompleted(b) => b.booking_id.clone(),
            Self::AuroraBookingCancelled(b) => b.booking_id.clone(),
            Self::AuroraReviewSubmitted(r) => r.review_id.clone(),
            Self::TribeEventAttendance(e) => format!("{}\u{1f}{}", e.event_id, e.attendee_id),
            Self::TribeContribution(c) => c.contribution_id.clone(),
            Self::TribeStakingStarted(s) => s.stake_id.clone(),
            Self::TribeCoachingMilestone(m) => format!("{}\u{1f}{}", m.user_id, m.milestone_name),
            Self::TribeReferralSuccess(r) => format!("{}\u{1f}{}", r.referrer_id, r.referred_id),
        }
    }

    /// The partners' id of the user the event is about (the one rewarded).
    pub fn user_external_id(&self) -> &str {
        match self {
            Self::AuroraBookingCreated(b) => &b.guest_id,
            Self::AuroraBookingCompleted(b) => &b.guest_id,
            Self::AuroraBookingCancelled(b) => &b.guest_id,
            Self::AuroraReviewSubmitted(r) => &r.guest_id,
            Self::TribeEventAttendance(e) => &e.attendee_id,
            Self::TribeContribution(c) => &c.user_id,
            Self::TribeStakingStarted(s) => &s.user_id,
            Self::TribeCoachingMilestone(m) => &m.user_id,
            Self::TribeReferralSuccess(r) => &r.referrer_id,
        }
    }
}

/// An Aurora booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// Aurora's booking id.
    pub booking_id: String,
    /// Aurora's guest id (the HAVEN user id).
    pub guest_id: String,
    /// Guest e-mail, when Aurora sent one.
    pub guest_email: Option<String>,
    /// Total price in CAD, exact decimal string (e.g. `"100.00"`).
    pub total_price: String,
    /// Number of nights.
    pub nights: u32,
    /// Check-in date as sent by Aurora.
    pub check_in: Option<String>,
    /// Check-out date as sent by Aurora.
    pub check_out: Option<String>,
}

/// A reference to an Aurora booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingRef {
    /// Aurora's booking id.
    pub booking_id: String,
    /// Aurora's guest id.
    pub guest_id: String,
}

/// An Aurora booking cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingCancellation {
    /// Aurora's booking id.
    pub booking_id: String,
    /// Aurora's guest id.
    pub guest_id: String,
    /// Why the booking was cancelled, when Aurora said.
    pub cancellation_reason: Option<String>,
}

/// An Aurora review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// Aurora's review id.
    pub review_id: String,
    /// The reviewed booking.
    pub booking_id: Option<String>,
    /// Aurora's guest id.
    pub guest_id: String,
    /// 1..=5.
    pub rating: u8,
}

/// A Tribe event attendance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAttendance {
    /// Tribe's event id.
    pub event_id: String,
    /// Tribe's member id (the HAVEN user id).
    pub attendee_id: String,
    /// Event name, when sent.
    pub event_name: Option<String>,
    /// Event type (`wisdom_circle`, `workshop`, `networking`, ...), lower-cased.
    pub event_type: String,
    /// Whether the member attended.
    pub attended: bool,
    /// When, as sent by Tribe.
    pub timestamp: Option<String>,
}

/// A Tribe contribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// Tribe's contribution id.
    pub contribution_id: String,
    /// Tribe's member id.
    pub user_id: String,
    /// `post`, `comment`, `resource`, `guide`, ...
    pub contribution_type: String,
    /// Quality score as an exact decimal string, when sent.
    pub quality_score: Option<String>,
}

/// A Tribe stake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakingStarted {
    /// Tribe's stake id.
    pub stake_id: String,
    /// Tribe's member id.
    pub user_id: String,
    /// Staked amount in wei.
    #[serde(with = "crate::wei")]
    pub amount_wei: u128,
}

/// A Tribe coaching milestone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoachingMilestone {
    /// Tribe's member id.
    pub user_id: String,
    /// Name of the milestone.
    pub milestone_name: String,
    /// `basic`, `intermediate` or `advanced`.
    pub tier: String,
}

/// A successful Tribe referral.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralSuccess {
    /// Member who referred (rewarded).
    pub referrer_id: String,
    /// Member who was referred.
    pub referred_id: String,
    /// `basic`, `silver` or `gold`.
    pub tier: String,
}

// ---------------------------------------------------------------- chain requests

/// Work for chain-minter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum ChainRequest {
    /// Mint tokens to a user's custodial wallet.
    #[serde(rename = "mint")]
    Mint(MintRequest),
    /// Burn tokens from a user's custodial wallet.
    #[serde(rename = "burn")]
    Burn(BurnRequest),
}

queue_message!(ChainRequest, names::CHAIN_REQUESTS, 1, names::CHAIN_REQUEST_ROUTING_PREFIX, {
    Mint => "mint", "mint";
    Burn => "burn", "burn";
});

/// Mint `amount_wei` to `to_address`; `tx_id` determines the on-chain reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MintRequest {
    /// The token transaction this mint settles.
    pub tx_id: Uuid,
    /// HAVEN user id.
    pub user_id: String,
    /// Custodial wallet address, 0x-prefixed.
    pub to_address: String,
    /// Amount in wei.
    #[serde(with = "crate::wei")]
    pub amount_wei: u128,
    /// Why (booking, review, event, ...).
    pub reason: String,
}

/// Burn `amount_wei` from `from_address`; `tx_id` determines the on-chain reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BurnRequest {
    /// The token transaction this burn settles.
    pub tx_id: Uuid,
    /// HAVEN user id.
    pub user_id: String,
    /// Custodial wallet address, 0x-prefixed.
    pub from_address: String,
    /// Amount in wei.
    #[serde(with = "crate::wei")]
    pub amount_wei: u128,
    /// Why (redemption, reversal, ...).
    pub reason: String,
    /// The redemption this burn belongs to, if any.
    pub redemption_id: Option<Uuid>,
}

// ---------------------------------------------------------------- chain events

/// Outcomes of chain transactions, published by chain-minter after they are
/// recorded: every failure, and the confirmations someone waits on (a
/// redemption's burn, a refund's mint; see [`REFUND_REASON`]). A reward's
/// mint is confirmed in the ledger and announced to no one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum ChainEvent {
    /// A mint or burn was confirmed on chain and recorded in the ledger.
    #[serde(rename = "confirmed")]
    Confirmed(TxConfirmed),
    /// A mint or burn can never succeed and was marked failed.
    #[serde(rename = "failed")]
    Failed(TxFailed),
}

queue_message!(ChainEvent, names::CHAIN_EVENTS, 1, names::CHAIN_EVENT_ROUTING_PREFIX, {
    Confirmed => "confirmed", "confirmed";
    Failed => "failed", "failed";
});

/// The `reason` of a mint that gives a failed redemption's tokens back
/// (redemption-payout's refund). Its confirmation, and a redemption's
/// burn's, are the outcomes another service waits on, so chain-minter
/// announces those (see [`ChainEvent`]).
pub const REFUND_REASON: &str = "refund";

/// Mint or burn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxType {
    /// Tokens created.
    Mint,
    /// Tokens destroyed.
    Burn,
}

/// A confirmed chain transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxConfirmed {
    /// The token transaction.
    pub tx_id: Uuid,
    /// Mint or burn.
    pub tx_type: TxType,
    /// HAVEN user id.
    pub user_id: String,
    /// Amount in wei.
    #[serde(with = "crate::wei")]
    pub amount_wei: u128,
    /// Transaction hash, 0x-prefixed.
    pub tx_hash: String,
    /// Block that included it.
    pub block_number: u64,
    /// The redemption this burn belongs to, if any.
    pub redemption_id: Option<Uuid>,
}

/// A chain transaction that can never succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxFailed {
    /// The token transaction.
    pub tx_id: Uuid,
    /// Mint or burn.
    pub tx_type: TxType,
    /// HAVEN user id.
    pub user_id: String,
    /// Why it failed (decoded revert reason or validation error).
    pub reason: String,
    /// The redemption this burn belongs to, if any.
    pub redemption_id: Option<Uuid>,
}

// ---------------------------------------------------------------- redemptions

/// Work for redemption-payout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum RedemptionCommand {
    /// A redemption was reserved at ingress and must be burned and paid out.
    #[serde(rename = "requested")]
    Requested(RedemptionRequested),
}

queue_message!(RedemptionCommand, names::REDEMPTION_REQUESTS, 1, names::REDEMPTION_ROUTING_PREFIX, {
    Requested => "requested", "requested";
});

/// How the user is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawalMethod {
    /// Bank transfer through the payout provider.
    BankTransfer,
    /// PayPal through the payout provider.
    Paypal,
    /// Crypto to `withdrawal_address`.
    Crypto,
}

/// A reserved redemption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedemptionRequested {
    /// Redemption id (the `request_id` returned to the caller).
    pub redemption_id: Uuid,
    /// HAVEN user id.
    pub user_id: String,
    /// Amount reserved and burned, in wei.
    #[serde(with = "crate::wei")]
    pub amount_wei: u128,
    /// Amount paid out (98 %), in wei.
    #[serde(with = "crate::wei")]
    pub payout_wei: u128,
    /// Payout method.
    pub withdrawal_method: WithdrawalMethod,
    /// Destination address for crypto payouts.
    pub withdrawal_address: Option<String>,
}
