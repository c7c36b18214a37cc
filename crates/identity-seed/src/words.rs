//! The vocabularies rows are drawn from. Names carry accents and apostrophes on purpose (the
//! display form), next to an ASCII form for emails and usernames, so that text handling is
//! exercised while emails stay lowercase ASCII.

/// First names: (display, ascii).
pub(crate) const FIRST: &[(&str, &str)] = &[
    ("James", "james"),
    ("Mary", "mary"),
    ("José", "jose"),
    ("Zoë", "zoe"),
    ("Aiko", "aiko"),
    ("Liam", "liam"),
    ("Olivia", "olivia"),
    ("Noah", "noah"),
    ("Emma", "emma"),
    ("Mateo", "mateo"),
    ("Sofía", "sofia"),
    ("Chen", "chen"),
    ("Priya", "priya"),
    ("Ahmed", "ahmed"),
    ("Fatima", "fatima"),
    ("Lukas", "lukas"),
    ("Anna", "anna"),
    ("Ingrid", "ingrid"),
    ("Kwame", "kwame"),
    ("Amara", "amara"),
    ("Yuki", "yuki"),
    ("Dmitri", "dmitri"),
    ("Élodie", "elodie"),
    ("Seán", "sean"),
    ("Björn", "bjorn"),
    ("Nia", "nia"),
    ("Ravi", "ravi"),
    ("Hana", "hana"),
    ("Tomás", "tomas"),
    ("Grace", "grace"),
    ("Omar", "omar"),
    ("Leila", "leila"),
];

/// Last names: (display, ascii).
pub(crate) const LAST: &[(&str, &str)] = &[
    ("Smith", "smith"),
    ("O'Brien", "obrien"),
    ("García", "garcia"),
    ("Müller", "muller"),
    ("Nguyen", "nguyen"),
    ("Kim", "kim"),
    ("Patel", "patel"),
    ("Johnson", "johnson"),
    ("Rossi", "rossi"),
    ("Dubois", "dubois"),
    ("Kowalski", "kowalski"),
    ("Tanaka", "tanaka"),
    ("Okafor", "okafor"),
    ("Silva", "silva"),
    ("Ivanova", "ivanova"),
    ("Andersson", "andersson"),
    ("Cohen", "cohen"),
    ("Haddad", "haddad"),
    ("van der Berg", "vanderberg"),
    ("Schmidt", "schmidt"),
    ("Lee", "lee"),
    ("Brown", "brown"),
    ("Martínez", "martinez"),
    ("Jensen", "jensen"),
];

/// Email domains (reserved example names, so no real mailbox is ever named).
pub(crate) const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example.com",
    "corp.example.org",
];

/// Countries: (ISO 3166-1 alpha-2, calling code, city, state/province, latitude, longitude).
pub(crate) const COUNTRIES: &[(&str, &str, &str, &str, &str, &str)] = &[
    ("US", "1", "New York", "NY", "40.7128", "-74.0060"),
    ("US", "1", "San Francisco", "CA", "37.7749", "-122.4194"),
    ("DE", "49", "Berlin", "BE", "52.5200", "13.4050"),
    ("FR", "33", "Paris", "IDF", "48.8566", "2.3522"),
    ("GB", "44", "London", "ENG", "51.5074", "-0.1278"),
    ("JP", "81", "Tokyo", "13", "35.6762", "139.6503"),
    ("IN", "91", "Bengaluru", "KA", "12.9716", "77.5946"),
    ("BR", "55", "São Paulo", "SP", "-23.5505", "-46.6333"),
    ("NG", "234", "Lagos", "LA", "6.5244", "3.3792"),
    ("AU", "61", "Sydney", "NSW", "-33.8688", "151.2093"),
    ("CA", "1", "Toronto", "ON", "43.6532", "-79.3832"),
    ("SE", "46", "Stockholm", "AB", "59.3293", "18.0686"),
    ("ES", "34", "Madrid", "MD", "40.4168", "-3.7038"),
];

/// Language codes (at most 10 characters).
pub(crate) const LANGUAGES: &[&str] = &[
    "en", "en", "en", "en-GB", "de", "fr", "es", "pt-BR", "ja", "zh-Hans", "hi", "ar",
];

/// IANA time zones.
pub(crate) const TIMEZONES: &[&str] = &[
    "UTC",
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Africa/Lagos",
];

/// `users.theme_preference`, the application's value set.
pub(crate) const THEMES: &[&str] = &["light", "light", "dark", "auto"];

/// User agents, as browsers and the mobile apps send them.
pub(crate) const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    "IdentityApp/3.4.1 (iOS 17.2; iPhone15,2)",
    "IdentityApp/3.4.0 (Android 14; SM-S918B)",
];

/// Devices matching [`USER_AGENTS`] by index: (device_type, os, browser, browser_version).
pub(crate) const DEVICES: &[(&str, &str, &str, &str)] = &[
    ("desktop", "Windows", "Chrome", "120.0"),
    ("desktop", "macOS", "Safari", "17.2"),
    ("desktop", "Linux", "Firefox", "121.0"),
    ("mobile", "iOS", "Safari", "17.2"),
    ("mobile", "Android", "Chrome", "120.0"),
    ("mobile", "iOS", "IdentityApp", "3.4.1"),
    ("mobile", "Android", "IdentityApp", "3.4.0"),
];

/// Organization name parts.
pub(crate) const ORG_ADJECTIVES: &[&str] = &[
    "Blue", "Bright", "Northern", "Silver", "Rapid", "Quiet", "Golden", "Open", "Clear", "Red",
    "Green", "Summit", "Harbor", "Prairie", "Coastal", "Urban",
];

/// Organization name parts.
pub(crate) const ORG_NOUNS: &[&str] = &[
    "Labs",
    "Systems",
    "Works",
    "Partners",
    "Analytics",
    "Health",
    "Logistics",
    "Studio",
    "Foundation",
    "Networks",
    "Robotics",
    "Foods",
    "Energy",
    "Learning",
    "Capital",
    "Media",
];

/// `organizations.organization_type`, the application's value set, weighted.
pub(crate) const ORG_TYPES: &[&str] = &[
    "individual",
    "small_business",
    "small_business",
    "small_business",
    "enterprise",
    "non_profit",
];

/// Industries.
pub(crate) const INDUSTRIES: &[&str] = &[
    "Software",
    "Healthcare",
    "Finance",
    "Education",
    "Retail",
    "Manufacturing",
    "Logistics",
    "Media & Entertainment",
    "Non-profit",
    "Energy",
];

/// Employee count ranges.
pub(crate) const EMPLOYEE_RANGES: &[&str] = &["1-10", "11-50", "51-200", "201-1000", "1000+"];

/// Subscription tiers, weighted.
pub(crate) const TIERS: &[&str] = &[
    "free",
    "free",
    "free",
    "starter",
    "professional",
    "enterprise",
];

/// Subscription statuses, weighted.
pub(crate) const SUBSCRIPTION_STATUSES: &[&str] = &[
    "active", "active", "active", "active", "trialing", "past_due", "canceled",
];

/// Streets.
pub(crate) const STREETS: &[&str] = &[
    "Main Street",
    "Market Street",
    "Rue de Rivoli",
    "Friedrichstraße",
    "King Street",
    "Avenida Paulista",
    "Harbour Road",
    "Elm Avenue",
];

/// Job titles.
pub(crate) const JOB_TITLES: &[&str] = &[
    "Software Engineer",
    "Senior Software Engineer",
    "Product Manager",
    "Designer",
    "Data Scientist",
    "Support Specialist",
    "Account Executive",
    "Engineering Manager",
    "HR Business Partner",
    "Chief Executive Officer",
];

/// Departments.
pub(crate) const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Product",
    "Design",
    "Sales",
    "Marketing",
    "Support",
    "People",
    "Finance",
    "R&D",
];

/// Skills (JSON-safe strings).
pub(crate) const SKILLS: &[&str] = &[
    "rust",
    "python",
    "sql",
    "postgresql",
    "kubernetes",
    "figma",
    "negotiation",
    "writing",
    "statistics",
    "go",
    "typescript",
    "public speaking",
];

/// Interests (JSON-safe strings).
pub(crate) const INTERESTS: &[&str] = &[
    "hiking",
    "chess",
    "photography",
    "cooking",
    "cycling",
    "music",
    "reading",
    "gardening",
];

/// Certifications (JSON-safe strings).
pub(crate) const CERTIFICATIONS: &[&str] = &[
    "AWS Solutions Architect",
    "CISSP",
    "PMP",
    "CKA",
    "Scrum Master",
];

/// Emergency contact relationships.
pub(crate) const RELATIONSHIPS: &[&str] =
    &["Spouse", "Partner", "Parent", "Sibling", "Friend", "Child"];

/// Bios; some contain a newline, a tab or a backslash, which COPY must carry escaped.
pub(crate) const BIOS: &[&str] = &[
    "Building things that last.",
    "Coffee first, then code.",
    "Line one of my bio.\nLine two, after a newline.",
    "Columns:\tname\tvalue",
    "Windows paths look like C:\\Users\\me, which is a backslash test.",
    "Fan of \"quotes\" and 'apostrophes'.",
    "Über-curious; 日本語も話します.",
];

/// Organization descriptions; one spans lines.
pub(crate) const ORG_DESCRIPTIONS: &[&str] = &[
    "We help teams ship faster.",
    "A community organization.\nFounded by volunteers.",
    "Data-driven solutions for modern businesses.",
    "Making identity boring, in the best way.",
];
