"""The identity service's ten tables, declared with SQLAlchemy 2.0 from the spec.

Written from `shared/spec/service-models.md`, section 1 (one table each: names, SQLAlchemy
types, nullability, Python-side defaults, foreign keys and the relationships that make an ORM
delete read other tables), not copied from the service's code. What matters to the contract is
what the ORM binds and reads: every id and foreign key is `UUID(as_uuid=True)`, every `DateTime`
naive, every default applied in Python. Indexes and unique keys are left out: the database these
models run against is the one identity-migrate built, never `create_all`.
"""

import uuid
from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, Column, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, relationship


def utcnow():
    """`datetime.utcnow()`, the service's clock: naive, in UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


def pk():
    return Column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)


def ref(target, nullable=False):
    return Column(UUID(as_uuid=True), ForeignKey(target), nullable=nullable)


class Organization(Base):
    __tablename__ = "organizations"
    id = pk()
    name = Column(String(255), nullable=False)
    slug = Column(String(100), nullable=False)
    display_name = Column(String(255))
    description = Column(Text)
    website_url = Column(String(500))
    logo_url = Column(String(500))
    contact_email = Column(String(255))
    contact_phone = Column(String(20))
    address_line1 = Column(String(255))
    address_line2 = Column(String(255))
    city = Column(String(100))
    state_province = Column(String(100))
    postal_code = Column(String(20))
    country_code = Column(String(2))
    organization_type = Column(String(30), default="individual")
    industry = Column(String(100))
    employee_count_range = Column(String(20))
    settings = Column(JSON, default=dict)
    features = Column(JSON, default=list)
    customization = Column(JSON, default=dict)
    is_active = Column(Boolean, default=True)
    is_verified = Column(Boolean, default=False)
    subscription_tier = Column(String(50), default="free")
    trial_ends_at = Column(DateTime)
    billing_email = Column(String(255))
    created_at = Column(DateTime, default=utcnow)
    updated_at = Column(DateTime, default=utcnow, onupdate=utcnow)
    deleted_at = Column(DateTime)

    users = relationship("User", back_populates="organization")


class User(Base):
    __tablename__ = "users"
    id = pk()
    email = Column(String(255), nullable=False)
    username = Column(String(150))
    password_hash = Column(String(255), nullable=False)
    first_name = Column(String(150))
    last_name = Column(String(150))
    display_name = Column(String(255))
    avatar_url = Column(String(500))
    bio = Column(Text)
    phone_number = Column(String(20))
    secondary_email = Column(String(255))
    language_code = Column(String(10), default="en")
    timezone = Column(String(50), default="UTC")
    theme_preference = Column(String(20), default="light")
    notification_preferences = Column(JSON, default=dict)
    privacy_settings = Column(JSON, default=dict)
    status = Column(String(30), default="pending_verification")
    is_verified = Column(Boolean, default=False)
    is_active = Column(Boolean, default=True)
    failed_login_attempts = Column(Integer, default=0)
    locked_until = Column(DateTime)
    password_changed_at = Column(DateTime)
    last_login_at = Column(DateTime)
    last_login_ip = Column(String(45))
    organization_id = ref("organizations.id", nullable=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, default=utcnow, onupdate=utcnow)
    deleted_at = Column(DateTime)

    organization = relationship("Organization", back_populates="users")
    # As the service declares them: deleting a User loads these three with every model column.
    sessions = relationship("UserSession", back_populates="user", cascade="all, delete-orphan")
    activity_logs = relationship("UserActivityLog", back_populates="user")
    mfa_methods = relationship("MFAMethod", back_populates="user")


class UserProfile(Base):
    __tablename__ = "user_profiles"
    id = pk()
    user_id = ref("users.id")
    job_title = Column(String(255))
    department = Column(String(255))
    manager_user_id = ref("users.id", nullable=True)
    social_links = Column(JSON, default=dict)
    emergency_contact_name = Column(String(255))
    emergency_contact_phone = Column(String(20))
    emergency_contact_relationship = Column(String(100))
    skills = Column(JSON, default=list)
    interests = Column(JSON, default=list)
    certifications = Column(JSON, default=list)
    preferred_working_hours = Column(JSON, default=dict)
    preferred_communication_methods = Column(JSON, default=list)
    onboarding_completed = Column(Boolean, default=False)
    onboarding_step = Column(String(50))
    last_activity_at = Column(DateTime)
    engagement_score = Column(Integer, default=0)
    created_at = Column(DateTime, default=utcnow)
    updated_at = Column(DateTime, default=utcnow, onupdate=utcnow)


class UserSession(Base):
    __tablename__ = "user_sessions"
    id = pk()
    user_id = ref("users.id")
    access_token_jti = Column(String(255), nullable=False)
    refresh_token_jti = Column(String(255))
    device_id = Column(String(255))
    device_name = Column(String(255))
    device_type = Column(String(50))
    ip_address = Column(String(45), nullable=False)
    country_code = Column(String(2))
    city = Column(String(100))
    user_agent = Column(Text)
    browser = Column(String(100))
    operating_system = Column(String(100))
    is_active = Column(Boolean, default=True)
    revocation_reason = Column(String(100))
    created_at = Column(DateTime, default=utcnow)
    last_activity_at = Column(DateTime, default=utcnow)
    expires_at = Column(DateTime, nullable=False)
    revoked_at = Column(DateTime)

    user = relationship("User", back_populates="sessions")


class MFAMethod(Base):
    __tablename__ = "mfa_methods"
    id = pk()
    user_id = ref("users.id")
    method_type = Column(String(20), nullable=False)
    is_primary = Column(Boolean, default=False)
    is_active = Column(Boolean, default=True)
    secret = Column(String(255))
    phone_number = Column(String(20))
    email = Column(String(255))
    credential_id = Column(String(255))
    public_key = Column(Text)
    verified_at = Column(DateTime)
    last_used_at = Column(DateTime)
    failure_count = Column(Integer, default=0)
    device_name = Column(String(255))
    setup_metadata = Column(JSON, default=dict)
    created_at = Column(DateTime, default=utcnow)
    updated_at = Column(DateTime, default=utcnow, onupdate=utcnow)

    user = relationship("User", back_populates="mfa_methods")


class MFAChallenge(Base):
    __tablename__ = "mfa_challenges"
    id = pk()
    user_id = ref("users.id")
    mfa_method_id = ref("mfa_methods.id")
    challenge_type = Column(String(20), nullable=False)
    destination = Column(String(255), nullable=False)
    code_hash = Column(String(255), nullable=False)
    attempts_used = Column(Integer, default=0)
    max_attempts = Column(Integer, default=3)
    is_used = Column(Boolean, default=False)
    session_id = Column(UUID(as_uuid=True))
    ip_address = Column(String(45))
    user_agent = Column(Text)
    created_at = Column(DateTime, default=utcnow)
    expires_at = Column(DateTime, nullable=False)
    used_at = Column(DateTime)


class EmailVerification(Base):
    __tablename__ = "email_verifications"
    id = pk()
    user_id = ref("users.id")
    email = Column(String(255), nullable=False)
    token_hash = Column(String(255), nullable=False)
    verification_type = Column(String(30), default="account_verification")
    is_verified = Column(Boolean, default=False)
    verified_at = Column(DateTime)
    ip_address = Column(String(45))
    user_agent = Column(Text)
    created_at = Column(DateTime, default=utcnow)
    expires_at = Column(DateTime, nullable=False)


class PasswordReset(Base):
    __tablename__ = "password_resets"
    id = pk()
    user_id = ref("users.id")
    token_hash = Column(String(255), nullable=False)
    email = Column(String(255), nullable=False)
    is_used = Column(Boolean, default=False)
    used_at = Column(DateTime)
    ip_address = Column(String(45))
    user_agent = Column(Text)
    created_at = Column(DateTime, default=utcnow)
    expires_at = Column(DateTime, nullable=False)


class UserActivityLog(Base):
    __tablename__ = "user_activity_logs"
    id = pk()
    user_id = ref("users.id")
    action = Column(String(100), nullable=False)
    resource = Column(String(100))
    resource_id = Column(String(255))
    ip_address = Column(String(45))
    user_agent = Column(Text)
    session_id = Column(UUID(as_uuid=True))
    event_metadata = Column(JSON, default=dict)
    success = Column(Boolean, default=True)
    error_message = Column(Text)
    created_at = Column(DateTime, default=utcnow)

    user = relationship("User", back_populates="activity_logs")


class UserPreference(Base):
    __tablename__ = "user_preferences"
    id = pk()
    user_id = ref("users.id")
    category = Column(String(50), nullable=False)
    key = Column(String(100), nullable=False)
    value = Column(JSON)
    description = Column(String(255))
    is_system = Column(Boolean, default=False)
    created_at = Column(DateTime, default=utcnow)
    updated_at = Column(DateTime, default=utcnow, onupdate=utcnow)


MODELS = [
    Organization,
    User,
    UserProfile,
    UserSession,
    MFAMethod,
    MFAChallenge,
    EmailVerification,
    PasswordReset,
    UserActivityLog,
    UserPreference,
]
