//! The row generators, one per table, each a pure function of (seed, parent index).
//!
//! Child tables never look up what was inserted: they recompute the facts of their user from
//! [`Ctx::user`] and the identifiers from [`Keys::uuid`], so every pass streams and none keeps a
//! table in memory.

use std::fmt::Write as _;

use crate::copy::Out;
use crate::gen::{b64_random, hex_u64, Keys, Rng, Tag, DAY, T2018, T2019, T2025};
use crate::words::*;

/// `users.status`, the application's value set.
const STATUSES: &[&str] = &[
    "active",
    "inactive",
    "pending_verification",
    "suspended",
    "deleted",
];
/// Weights of [`STATUSES`], per mille.
const STATUS_WEIGHTS: &[u64] = &[750, 80, 100, 30, 40];
const ACTIVE: usize = 0;
const PENDING: usize = 2;
const SUSPENDED: usize = 3;
const DELETED: usize = 4;

/// `mfa_methods.method_type`, the application's value set, and the matching challenge type.
const MFA_TYPES: &[(&str, &str)] = &[
    ("email", "email"),
    ("sms", "sms"),
    ("totp", "totp"),
    ("backup_codes", "backup_code"),
    ("webauthn", "webauthn"),
];

/// Identifier slots per user for child rows: index = user * slots + k, so ids stay unique.
const SESSION_SLOTS: u64 = 8;
const MFA_SLOTS: u64 = MFA_TYPES.len() as u64;
const CHALLENGE_SLOTS: u64 = 4;
const VERIFICATION_SLOTS: u64 = 4;
const RESET_SLOTS: u64 = 4;
const ACTIVITY_SLOTS: u64 = 16;
const PREFERENCE_SLOTS: u64 = 16;

/// The seed and the scale.
pub(crate) struct Ctx {
    pub(crate) keys: Keys,
    pub(crate) users: u64,
    pub(crate) orgs: u64,
}

/// What child tables need to know about a user, recomputed on demand.
pub(crate) struct UserFacts {
    index: u64,
    id: u128,
    first: usize,
    last: usize,
    domain: usize,
    style: u64,
    created: i64,
    status: usize,
    org: Option<u64>,
    country: usize,
    phone: Option<u64>,
    deleted_at: Option<i64>,
}

impl UserFacts {
    /// The login email: lowercase ASCII, unique because it ends in `.<index>@`, after a prefix
    /// that has no digits.
    fn email(&self, s: &mut String) {
        let (first, last, domain) = (FIRST[self.first].1, LAST[self.last].1, DOMAINS[self.domain]);
        let i = self.index;
        let _ = match self.style {
            0 => write!(s, "{first}.{last}.{i}@{domain}"),
            1 => write!(s, "{first}_{last}.{i}@{domain}"),
            _ => write!(s, "{}.{last}.{i}@{domain}", &first[..1]),
        };
    }

    fn phone(&self, number: u64, s: &mut String) {
        let _ = write!(s, "+{}{:010}", COUNTRIES[self.country].1, number);
    }

    fn verified(&self) -> bool {
        self.status != PENDING
    }
}

impl Ctx {
    /// The facts of user `i`, from its own stream (the users pass draws its other columns from
    /// a second stream, so these stay cheap to recompute).
    pub(crate) fn user(&self, i: u64) -> UserFacts {
        let mut r = self.keys.rng(Tag::User, i);
        let first = r.index(FIRST.len());
        let last = r.index(LAST.len());
        let domain = r.index(DOMAINS.len());
        let style = r.below(3);
        let created = r.range(T2019, T2025 - 30 * DAY);
        let mut roll = r.below(1000);
        let mut status = 0;
        while roll >= STATUS_WEIGHTS[status] {
            roll -= STATUS_WEIGHTS[status];
            status += 1;
        }
        let org = (self.orgs > 0 && r.chance(900)).then(|| r.below(self.orgs));
        let country = r.index(COUNTRIES.len());
        let phone = r.chance(600).then(|| r.below(10_000_000_000));
        let deleted_at = (status == DELETED).then(|| r.range(created + DAY, T2025));
        UserFacts {
            index: i,
            id: self.keys.uuid(Tag::UserId, i),
            first,
            last,
            domain,
            style,
            created,
            status,
            org,
            country,
            phone,
            deleted_at,
        }
    }

    /// How many sessions user `i` has: the first draw of its session stream, shared by the
    /// sessions pass and the activity logs that point at a session.
    fn session_count(&self, r: &mut Rng) -> u64 {
        r.below(5)
    }
}

/// An IP address as text, valid for `inet`: 70 % IPv4, 30 % IPv6 (documentation prefix).
fn ip(r: &mut Rng, o: &mut Out) {
    use std::io::Write as _;
    let v = r.next();
    o.raw(|b| {
        if v % 10 < 7 {
            let mut a = 1 + (v >> 8) % 223;
            if a == 127 {
                a = 128;
            }
            let _ = write!(
                b,
                "{a}.{}.{}.{}",
                (v >> 16) & 0xFF,
                (v >> 24) & 0xFF,
                1 + (v >> 32) % 254
            );
        } else {
            let w = r.next();
            let _ = write!(
                b,
                "2001:db8:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
                (v >> 16) & 0xFFFF,
                (v >> 32) & 0xFFFF,
                v >> 48,
                w & 0xFFFF,
                (w >> 16) & 0xFFFF,
                (w >> 32) & 0xFFFF
            );
        }
    });
}

fn opt_ip(r: &mut Rng, per_mille: u64, o: &mut Out) {
    if r.chance(per_mille) {
        ip(r, o);
    } else {
        o.null();
    }
}

fn opt_user_agent(r: &mut Rng, per_mille: u64, o: &mut Out) {
    if r.chance(per_mille) {
        o.s(r.pick(USER_AGENTS));
    } else {
        o.null();
    }
}

/// 64 random hex digits (a digest that need not be unique).
fn random_hex(r: &mut Rng, o: &mut Out) {
    o.raw(|b| {
        for _ in 0..4 {
            hex_u64(r.next(), b);
        }
    });
}

/// A JSON array of up to `max` strings from `items` (duplicates removed by picking distinct
/// positions).
fn json_array(r: &mut Rng, items: &[&str], max: u64, o: &mut Out) {
    let n = usize::try_from(r.below(max + 1)).unwrap_or(usize::MAX);
    let start = r.index(items.len());
    o.build(|s| {
        s.push('[');
        for k in 0..n.min(items.len()) {
            if k > 0 {
                s.push(',');
            }
            let _ = write!(s, "\"{}\"", items[(start + k) % items.len()]);
        }
        s.push(']');
    });
}

/// Picks `n` distinct indices of `0..len` (partial Fisher-Yates over a small array).
fn distinct<const N: usize>(r: &mut Rng, n: usize) -> [usize; N] {
    let mut all = [0; N];
    for (k, slot) in all.iter_mut().enumerate() {
        *slot = k;
    }
    for k in 0..n.min(N) {
        let j = k + r.index(N - k);
        all.swap(k, j);
    }
    all
}

/// `organizations` columns.
pub(crate) const ORGANIZATIONS: &[&str] = &[
    "id",
    "name",
    "slug",
    "display_name",
    "description",
    "website_url",
    "logo_url",
    "contact_email",
    "contact_phone",
    "address_line1",
    "address_line2",
    "city",
    "state_province",
    "postal_code",
    "country_code",
    "organization_type",
    "industry",
    "employee_count_range",
    "subscription_tier",
    "subscription_status",
    "settings",
    "is_active",
    "is_verified",
    "created_at",
    "updated_at",
    "deleted_at",
];

/// Organization `j`.
pub(crate) fn organization(ctx: &Ctx, j: u64, o: &mut Out) {
    let mut r = ctx.keys.rng(Tag::Org, j);
    let adj = r.pick(ORG_ADJECTIVES);
    let noun = r.pick(ORG_NOUNS);
    let country = r.pick(COUNTRIES);
    // The slug is unique because it ends in the index; the name need not be.
    let slug_lower = |s: &mut String| {
        let _ = write!(
            s,
            "{}-{}-{j}",
            adj.to_ascii_lowercase(),
            noun.to_ascii_lowercase()
        );
    };
    o.uuid(ctx.keys.uuid(Tag::OrgId, j));
    if r.chance(300) {
        o.f(format_args!("{adj} {noun} {j}"));
    } else {
        o.f(format_args!("{adj} {noun}"));
    }
    o.build(slug_lower);
    if r.chance(700) {
        o.f(format_args!("{adj} {noun}"));
    } else {
        o.null();
    }
    if r.chance(500) {
        o.s(r.pick(ORG_DESCRIPTIONS));
    } else {
        o.null();
    }
    for (per_mille, pattern) in [
        (800, "https://{}.example.com"),
        (400, "https://cdn.example.com/logos/{}.png"),
        (700, "contact@{}.example.com"),
    ] {
        if r.chance(per_mille) {
            o.build(|s| {
                let mut slug = String::new();
                slug_lower(&mut slug);
                s.push_str(&pattern.replace("{}", &slug));
            });
        } else {
            o.null();
        }
    }
    if r.chance(500) {
        o.f(format_args!(
            "+{}{:010}",
            country.1,
            r.below(10_000_000_000)
        ));
    } else {
        o.null();
    }
    if r.chance(600) {
        o.f(format_args!("{} {}", 1 + r.below(999), r.pick(STREETS)));
        if r.chance(300) {
            o.f(format_args!("Suite {}", 100 + r.below(900)));
        } else {
            o.null();
        }
        o.s(country.2);
        o.s(country.3);
        o.f(format_args!("{:05}", r.below(100_000)));
        o.s(country.0);
    } else {
        for _ in 0..5 {
            o.null();
        }
        // Country without an address: a common partial profile.
        if r.chance(500) {
            o.s(country.0);
        } else {
            o.null();
        }
    }
    o.s(r.pick(ORG_TYPES));
    if r.chance(800) {
        o.s(r.pick(INDUSTRIES));
    } else {
        o.null();
    }
    if r.chance(700) {
        o.s(r.pick(EMPLOYEE_RANGES));
    } else {
        o.null();
    }
    o.s(r.pick(TIERS));
    o.s(r.pick(SUBSCRIPTION_STATUSES));
    let sso = r.chance(200);
    let max_users = [5, 25, 100, 1000][r.index(4)];
    o.build(|s| {
        let _ = write!(
            s,
            "{{\"sso_enabled\":{sso},\"default_role\":\"member\",\"max_users\":{max_users},\"allowed_domains\":[\""
        );
        slug_lower(s);
        s.push_str(".example.com\"]}");
    });
    let created = r.range(T2018, T2025 - 365 * DAY);
    let deleted_at = r.chance(20).then(|| r.range(created + DAY, T2025));
    o.bool(deleted_at.is_none() && r.chance(970));
    o.bool(r.chance(600));
    o.ts(created);
    o.ts(r.range(created, T2025));
    o.opt_ts(deleted_at);
    o.end();
}

/// `users` columns.
pub(crate) const USERS: &[&str] = &[
    "id",
    "email",
    "username",
    "password_hash",
    "first_name",
    "last_name",
    "display_name",
    "avatar_url",
    "bio",
    "phone_number",
    "secondary_email",
    "language_code",
    "timezone",
    "theme_preference",
    "notification_preferences",
    "privacy_settings",
    "status",
    "is_verified",
    "is_active",
    "failed_login_attempts",
    "locked_until",
    "password_changed_at",
    "last_login_at",
    "last_login_ip",
    "organization_id",
    "created_at",
    "updated_at",
    "deleted_at",
];

/// User `i`.
pub(crate) fn user(ctx: &Ctx, i: u64, o: &mut Out) {
    let u = ctx.user(i);
    let mut r = ctx.keys.rng(Tag::UserExtra, i);
    let (first, first_ascii) = FIRST[u.first];
    let (last, last_ascii) = LAST[u.last];
    o.uuid(u.id);
    o.build(|s| u.email(s));
    // Unique like the email: a digit-free prefix, then the index.
    if r.chance(700) {
        o.f(format_args!("{first_ascii}_{last_ascii}{i}"));
    } else {
        o.null();
    }
    o.raw(|b| {
        b.extend_from_slice(b"$argon2id$v=19$m=65536,t=3,p=4$");
        b64_random(&mut r, 16, b);
        b.push(b'$');
        b64_random(&mut r, 32, b);
    });
    o.opt_s(r.chance(950).then_some(first));
    o.opt_s(r.chance(950).then_some(last));
    if r.chance(800) {
        o.f(format_args!("{first} {last}"));
    } else {
        o.null();
    }
    if r.chance(500) {
        let v = r.next();
        o.raw(|b| {
            b.extend_from_slice(b"https://cdn.example.com/avatars/");
            hex_u64(v, b);
            b.extend_from_slice(b".png");
        });
    } else {
        o.null();
    }
    if r.chance(200) {
        o.s(r.pick(BIOS));
    } else {
        o.null();
    }
    match u.phone {
        Some(n) => o.build(|s| u.phone(n, s)),
        None => o.null(),
    }
    if r.chance(100) {
        let other = DOMAINS[(u.domain + 1) % DOMAINS.len()];
        o.f(format_args!("{first_ascii}.{last_ascii}.{i}@{other}"));
    } else {
        o.null();
    }
    o.s(r.pick(LANGUAGES));
    o.s(r.pick(TIMEZONES));
    o.s(r.pick(THEMES));
    let (email, sms, push) = (r.chance(900), r.chance(200), r.chance(600));
    let digest = r.pick(&["daily", "weekly", "never"]);
    o.f(format_args!(
        "{{\"email\":{email},\"sms\":{sms},\"push\":{push},\"digest\":\"{digest}\"}}"
    ));
    let visibility = r.pick(&["public", "organization", "private"]);
    let (show_email, show_phone) = (r.chance(200), r.chance(100));
    o.f(format_args!(
        "{{\"profile_visibility\":\"{visibility}\",\"show_email\":{show_email},\"show_phone\":{show_phone}}}"
    ));
    o.s(STATUSES[u.status]);
    o.bool(u.verified());
    o.bool(u.status == ACTIVE || u.status == PENDING);
    let failed = if u.status == SUSPENDED {
        r.range(5, 11)
    } else if r.chance(150) {
        r.range(1, 5)
    } else {
        0
    };
    o.int(failed);
    o.opt_ts((u.status == SUSPENDED && r.chance(500)).then(|| T2025 + r.range(DAY, 30 * DAY)));
    o.opt_ts(r.chance(400).then(|| r.range(u.created, T2025)));
    if u.status != PENDING && r.chance(850) {
        o.ts(r.range(u.created, T2025));
        ip(&mut r, o);
    } else {
        o.null();
        o.null();
    }
    o.opt_uuid(u.org.map(|j| ctx.keys.uuid(Tag::OrgId, j)));
    o.ts(u.created);
    o.ts(r.range(u.created, T2025));
    o.opt_ts(u.deleted_at);
    o.end();
}

/// `user_profiles` columns.
pub(crate) const USER_PROFILES: &[&str] = &[
    "id",
    "user_id",
    "job_title",
    "department",
    "manager_user_id",
    "social_links",
    "emergency_contact_name",
    "emergency_contact_phone",
    "emergency_contact_relationship",
    "skills",
    "interests",
    "certifications",
    "metadata",
    "custom_fields",
    "created_at",
    "updated_at",
];

/// The profile of user `i`, for about half of the users.
pub(crate) fn user_profile(ctx: &Ctx, i: u64, o: &mut Out) {
    let mut r = ctx.keys.rng(Tag::Profile, i);
    if !r.chance(500) {
        return;
    }
    let u = ctx.user(i);
    let (first_ascii, last_ascii) = (FIRST[u.first].1, LAST[u.last].1);
    o.uuid(ctx.keys.uuid(Tag::ProfileId, i));
    o.uuid(u.id);
    o.opt_s(r.chance(800).then(|| r.pick(JOB_TITLES)));
    o.opt_s(r.chance(800).then(|| r.pick(DEPARTMENTS)));
    // Any other user; a manager is never the user itself.
    let manager = (ctx.users > 1 && r.chance(300)).then(|| {
        let j = r.below(ctx.users - 1);
        ctx.keys.uuid(Tag::UserId, if j >= i { j + 1 } else { j })
    });
    o.opt_uuid(manager);
    if r.chance(600) {
        o.f(format_args!(
            "{{\"linkedin\":\"https://www.linkedin.com/in/{first_ascii}-{last_ascii}-{i}\",\"github\":\"https://github.com/{first_ascii}{last_ascii}{i}\"}}"
        ));
    } else {
        o.s("{}");
    }
    if r.chance(400) {
        o.f(format_args!("{} {}", r.pick(FIRST).0, LAST[u.last].0));
        o.f(format_args!(
            "+{}{:010}",
            COUNTRIES[u.country].1,
            r.below(10_000_000_000)
        ));
        o.s(r.pick(RELATIONSHIPS));
    } else {
        o.null();
        o.null();
        o.null();
    }
    json_array(&mut r, SKILLS, 4, o);
    json_array(&mut r, INTERESTS, 3, o);
    json_array(&mut r, CERTIFICATIONS, 2, o);
    let onboarded = r.chance(800);
    o.f(format_args!(
        "{{\"source\":\"seed\",\"onboarding_completed\":{onboarded}}}"
    ));
    if r.chance(300) {
        o.f(format_args!(
            "{{\"employee_id\":\"E{i:07}\",\"cost_center\":\"CC-{}\"}}",
            100 + r.below(900)
        ));
    } else {
        o.s("{}");
    }
    let created = r.range(u.created, T2025);
    o.ts(created);
    o.ts(r.range(created, T2025));
    o.end();
}

/// `user_sessions` columns.
pub(crate) const USER_SESSIONS: &[&str] = &[
    "id",
    "user_id",
    "session_token_hash",
    "refresh_token_hash",
    "device_info",
    "ip_address",
    "user_agent",
    "location_info",
    "is_active",
    "expires_at",
    "last_accessed_at",
    "created_at",
];

/// The sessions of user `i` (0 to 4, about 2).
pub(crate) fn user_sessions(ctx: &Ctx, i: u64, o: &mut Out) {
    let mut r = ctx.keys.rng(Tag::Session, i);
    let count = ctx.session_count(&mut r);
    if count == 0 {
        return;
    }
    let u = ctx.user(i);
    for k in 0..count {
        let slot = i * SESSION_SLOTS + k;
        o.uuid(ctx.keys.uuid(Tag::SessionId, slot));
        o.uuid(u.id);
        o.raw(|b| ctx.keys.token(Tag::SessionToken, slot, &mut r, b));
        if r.chance(800) {
            o.raw(|b| ctx.keys.token(Tag::RefreshToken, slot, &mut r, b));
        } else {
            o.null();
        }
        let d = r.index(DEVICES.len());
        let (kind, os, browser, version) = DEVICES[d];
        o.f(format_args!(
            "{{\"device_type\":\"{kind}\",\"os\":\"{os}\",\"browser\":\"{browser}\",\"browser_version\":\"{version}\"}}"
        ));
        ip(&mut r, o);
        o.s(USER_AGENTS[d]);
        let place = if r.chance(800) {
            COUNTRIES[u.country]
        } else {
            r.pick(COUNTRIES)
        };
        o.f(format_args!(
            "{{\"country\":\"{}\",\"city\":\"{}\",\"latitude\":{},\"longitude\":{}}}",
            place.0, place.2, place.4, place.5
        ));
        let created = r.range(u.created.max(T2025 - 180 * DAY), T2025);
        let expires = created + 30 * DAY;
        let live = expires > T2025 && u.deleted_at.is_none() && u.status != SUSPENDED;
        o.bool(live && r.chance(800));
        o.ts(expires);
        o.ts(r.range(created, expires.min(T2025)));
        o.ts(created);
        o.end();
    }
}

/// The MFA methods of one user: which types, drawn from the user's MFA stream.
struct MfaPlan {
    types: [usize; 5],
    count: usize,
    rng: Rng,
}

fn mfa_plan(ctx: &Ctx, i: u64) -> MfaPlan {
    let mut rng = ctx.keys.rng(Tag::Mfa, i);
    let count = if rng.chance(300) {
        1 + usize::from(rng.chance(300)) + usize::from(rng.chance(100))
    } else {
        0
    };
    let types = distinct::<5>(&mut rng, count);
    MfaPlan { types, count, rng }
}

/// `mfa_methods` columns.
pub(crate) const MFA_METHODS: &[&str] = &[
    "id",
    "user_id",
    "method_type",
    "identifier",
    "secret_encrypted",
    "backup_codes_encrypted",
    "is_primary",
    "is_verified",
    "verification_attempts",
    "last_used_at",
    "created_at",
    "updated_at",
];

/// The MFA methods of user `i` (about 30 % of users have 1 to 3, of distinct types, so
/// `(user_id, method_type, identifier)` is unique).
pub(crate) fn mfa_methods(ctx: &Ctx, i: u64, o: &mut Out) {
    let MfaPlan {
        types,
        count,
        mut rng,
    } = mfa_plan(ctx, i);
    if count == 0 {
        return;
    }
    let r = &mut rng;
    let u = ctx.user(i);
    for (k, &t) in types[..count].iter().enumerate() {
        let (method, _) = MFA_TYPES[t];
        o.uuid(ctx.keys.uuid(Tag::MfaId, i * MFA_SLOTS + t as u64));
        o.uuid(u.id);
        o.s(method);
        match method {
            "email" => o.build(|s| u.email(s)),
            "sms" => {
                let n = u.phone.unwrap_or_else(|| r.below(10_000_000_000));
                o.build(|s| u.phone(n, s));
            }
            "totp" => o.s(r.pick(&["Authenticator app", "1Password", "Google Authenticator"])),
            "backup_codes" => o.s("backup-codes"),
            _ => o.s(r.pick(&["YubiKey 5C NFC", "Touch ID", "Windows Hello"])),
        }
        let secret_len = match method {
            "totp" => 20,
            "webauthn" => 48,
            _ => 0,
        };
        for len in [secret_len, if method == "backup_codes" { 60 } else { 0 }] {
            if len == 0 {
                o.null();
            } else {
                o.raw(|b| {
                    b.extend_from_slice(b"enc:v1:");
                    b64_random(r, len, b);
                });
            }
        }
        o.bool(k == 0);
        let verified = r.chance(900);
        o.bool(verified);
        o.int(if verified { 1 } else { r.range(0, 3) });
        let created = r.range(u.created, T2025);
        o.opt_ts((verified && r.chance(600)).then(|| r.range(created, T2025)));
        o.ts(created);
        o.ts(r.range(created, T2025));
        o.end();
    }
}

/// `mfa_challenges` columns.
pub(crate) const MFA_CHALLENGES: &[&str] = &[
    "id",
    "user_id",
    "mfa_method_id",
    "challenge_code_hash",
    "challenge_type",
    "expires_at",
    "attempts",
    "is_used",
    "ip_address",
    "user_agent",
    "created_at",
];

/// The challenges of user `i`'s MFA methods (0 to 2 per method, about 1).
pub(crate) fn mfa_challenges(ctx: &Ctx, i: u64, o: &mut Out) {
    let plan = mfa_plan(ctx, i);
    if plan.count == 0 {
        return;
    }
    let u = ctx.user(i);
    for &t in &plan.types[..plan.count] {
        let method_slot = i * MFA_SLOTS + t as u64;
        let mut r = ctx.keys.rng(Tag::Challenge, method_slot);
        for c in 0..r.below(3) {
            o.uuid(
                ctx.keys
                    .uuid(Tag::ChallengeId, method_slot * CHALLENGE_SLOTS + c),
            );
            o.uuid(u.id);
            o.uuid(ctx.keys.uuid(Tag::MfaId, method_slot));
            random_hex(&mut r, o);
            o.s(MFA_TYPES[t].1);
            let created = r.range(u.created.max(T2025 - 60 * DAY), T2025);
            o.ts(created + 300 * (1 + r.range(0, 2)));
            o.int(r.range(0, 4));
            o.bool(r.chance(600));
            opt_ip(&mut r, 950, o);
            opt_user_agent(&mut r, 900, o);
            o.ts(created);
            o.end();
        }
    }
}

/// `email_verifications` columns.
pub(crate) const EMAIL_VERIFICATIONS: &[&str] = &[
    "id",
    "user_id",
    "email",
    "token_hash",
    "verification_type",
    "expires_at",
    "attempts",
    "is_verified",
    "verified_at",
    "ip_address",
    "user_agent",
    "created_at",
];

/// User `i`'s email verifications: the registration one for 95 % of users, plus an email
/// change for some.
pub(crate) fn email_verifications(ctx: &Ctx, i: u64, o: &mut Out) {
    let mut r = ctx.keys.rng(Tag::Verification, i);
    let roll = r.below(1000);
    let count = match roll {
        0..=49 => 0,
        50..=899 => 1,
        _ => 2,
    };
    if count == 0 {
        return;
    }
    let u = ctx.user(i);
    for k in 0..count {
        let slot = i * VERIFICATION_SLOTS + k;
        o.uuid(ctx.keys.uuid(Tag::VerificationId, slot));
        o.uuid(u.id);
        let (created, verified) = if k == 0 {
            o.build(|s| u.email(s));
            (u.created, u.verified())
        } else {
            let (first, last) = (FIRST[u.first].1, LAST[u.last].1);
            o.f(format_args!("{first}.{last}.{i}.new@{}", r.pick(DOMAINS)));
            (r.range(u.created, T2025), r.chance(500))
        };
        o.raw(|b| ctx.keys.token(Tag::VerificationToken, slot, &mut r, b));
        o.s(if k == 0 {
            "registration"
        } else {
            "email_change"
        });
        o.ts(created + DAY);
        o.int(if verified { 1 } else { r.range(0, 3) });
        o.bool(verified);
        o.opt_ts(verified.then(|| created + r.range(60, DAY)));
        opt_ip(&mut r, 900, o);
        opt_user_agent(&mut r, 900, o);
        o.ts(created);
        o.end();
    }
}

/// `password_resets` columns.
pub(crate) const PASSWORD_RESETS: &[&str] = &[
    "id",
    "user_id",
    "token_hash",
    "expires_at",
    "is_used",
    "used_at",
    "ip_address",
    "user_agent",
    "created_at",
];

/// User `i`'s password resets (about 10 % of users have one or two).
pub(crate) fn password_resets(ctx: &Ctx, i: u64, o: &mut Out) {
    let mut r = ctx.keys.rng(Tag::Reset, i);
    let count = match r.below(1000) {
        0..=79 => 1,
        80..=99 => 2,
        _ => 0,
    };
    if count == 0 {
        return;
    }
    let u = ctx.user(i);
    for k in 0..count {
        let slot = i * RESET_SLOTS + k;
        o.uuid(ctx.keys.uuid(Tag::ResetId, slot));
        o.uuid(u.id);
        o.raw(|b| ctx.keys.token(Tag::ResetToken, slot, &mut r, b));
        let created = r.range(u.created, T2025);
        o.ts(created + 3600);
        let used = r.chance(600);
        o.bool(used);
        o.opt_ts(used.then(|| created + r.range(30, 3600)));
        opt_ip(&mut r, 950, o);
        opt_user_agent(&mut r, 950, o);
        o.ts(created);
        o.end();
    }
}

/// `user_activity_logs` columns.
pub(crate) const USER_ACTIVITY_LOGS: &[&str] = &[
    "id",
    "user_id",
    "action",
    "resource_type",
    "resource_id",
    "details",
    "ip_address",
    "user_agent",
    "session_id",
    "timestamp",
];

/// Actions: (action, resource_type, details JSON). The last has JSON escapes (`\n`, `\"`,
/// `\\`) whose backslashes COPY must carry through.
const ACTIONS: &[(&str, Option<&str>, &str)] = &[
    (
        "auth.login",
        Some("session"),
        r#"{"success":true,"method":"password","mfa":false}"#,
    ),
    (
        "auth.login",
        Some("session"),
        r#"{"success":true,"method":"password","mfa":true}"#,
    ),
    (
        "auth.login_failed",
        None,
        r#"{"success":false,"reason":"invalid_password"}"#,
    ),
    (
        "auth.logout",
        Some("session"),
        r#"{"reason":"user_initiated"}"#,
    ),
    (
        "profile.update",
        Some("user_profile"),
        r#"{"fields":["job_title","department"]}"#,
    ),
    ("password.change", Some("user"), r#"{"forced":false}"#),
    (
        "mfa.enable",
        Some("mfa_method"),
        r#"{"method_type":"totp"}"#,
    ),
    (
        "session.revoke",
        Some("session"),
        r#"{"revoked_by":"user","count":1}"#,
    ),
    (
        "preferences.update",
        Some("user_preference"),
        r#"{"key":"ui.theme","old":"light","new":"dark"}"#,
    ),
    (
        "support.note",
        None,
        r#"{"note":"line one\nline two","quoted":"said \"hi\"","path":"C:\\temp"}"#,
    ),
];

/// User `i`'s activity (0 to 10 entries, about 5).
pub(crate) fn user_activity_logs(ctx: &Ctx, i: u64, o: &mut Out) {
    let mut r = ctx.keys.rng(Tag::Activity, i);
    let count = r.below(11);
    if count == 0 {
        return;
    }
    let u = ctx.user(i);
    let sessions = ctx.session_count(&mut ctx.keys.rng(Tag::Session, i));
    for k in 0..count {
        o.uuid(ctx.keys.uuid(Tag::ActivityId, i * ACTIVITY_SLOTS + k));
        o.uuid(u.id);
        // The note with escapes is rare, like in life.
        let a = if r.chance(10) {
            ACTIONS.len() - 1
        } else {
            r.index(ACTIONS.len() - 1)
        };
        let (action, resource_type, details) = ACTIONS[a];
        o.s(action);
        o.opt_s(resource_type);
        if resource_type.is_some() {
            o.uuid(r.uuid());
        } else {
            o.null();
        }
        o.s(details);
        opt_ip(&mut r, 950, o);
        opt_user_agent(&mut r, 900, o);
        if sessions > 0 && r.chance(700) {
            o.uuid(
                ctx.keys
                    .uuid(Tag::SessionId, i * SESSION_SLOTS + r.below(sessions)),
            );
        } else {
            o.null();
        }
        o.ts(r.range(u.created, T2025));
        o.end();
    }
}

/// `user_preferences` columns.
pub(crate) const USER_PREFERENCES: &[&str] = &[
    "id",
    "user_id",
    "preference_key",
    "preference_value",
    "preference_type",
    "is_encrypted",
    "created_at",
    "updated_at",
];

/// Preference keys and their types.
const PREFERENCES: [(&str, &str); 8] = [
    ("ui.theme", "string"),
    ("ui.language", "string"),
    ("notifications.email", "boolean"),
    ("notifications.push", "boolean"),
    ("dashboard.widgets", "array"),
    ("editor.font_size", "number"),
    ("privacy.analytics", "boolean"),
    ("notifications.quiet_hours", "object"),
];

/// User `i`'s preferences (0 to 4 distinct keys, about 2).
pub(crate) fn user_preferences(ctx: &Ctx, i: u64, o: &mut Out) {
    let mut r = ctx.keys.rng(Tag::Preference, i);
    let count = r.index(5);
    if count == 0 {
        return;
    }
    let u = ctx.user(i);
    let keys = distinct::<{ PREFERENCES.len() }>(&mut r, count);
    for (k, &p) in keys[..count].iter().enumerate() {
        let (key, kind) = PREFERENCES[p];
        o.uuid(
            ctx.keys
                .uuid(Tag::PreferenceId, i * PREFERENCE_SLOTS + k as u64),
        );
        o.uuid(u.id);
        o.s(key);
        match kind {
            "string" if key == "ui.theme" => o.f(format_args!("\"{}\"", r.pick(THEMES))),
            "string" => o.f(format_args!("\"{}\"", r.pick(LANGUAGES))),
            "boolean" => o.s(if r.chance(500) { "true" } else { "false" }),
            "array" => json_array(&mut r, &["activity", "sessions", "security", "team"], 4, o),
            "number" => o.int(r.range(10, 20)),
            _ => o.f(format_args!(
                "{{\"start\":\"{:02}:00\",\"end\":\"{:02}:00\",\"timezone\":\"UTC\"}}",
                20 + r.below(4),
                6 + r.below(3)
            )),
        }
        o.s(kind);
        o.bool(r.chance(30));
        let created = r.range(u.created, T2025);
        o.ts(created);
        o.ts(r.range(created, T2025));
        o.end();
    }
}
