"""The database of an arcana-cloud-python deployment, made by the Python stack itself.

The `users` model is arcana-cloud-python's `app/models/user.py` (SQLAlchemy 2 declarative
mapping, enums stored by NAME, naive UTC datetimes from `datetime.utcnow`), without Flask: a
plain `DeclarativeBase` stands in for `flask_sqlalchemy`'s `db.Model`, which maps the same
table. Passwords are hashed by Werkzeug's `generate_password_hash`, as the Python service did.
"""
from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import Boolean, DateTime, Enum as SQLEnum, String, create_engine, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash


class Base(DeclarativeBase):
    pass


class UserRole(enum.Enum):
    ADMIN = "admin"
    USER = "user"
    GUEST = "guest"


class UserStatus(enum.Enum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    SUSPENDED = "suspended"
    DELETED = "deleted"


def utcnow() -> datetime:
    # datetime.utcnow(), as the Python model's defaults (naive UTC), without its deprecation.
    return datetime.now(timezone.utc).replace(tzinfo=None)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(80), unique=True, nullable=False, index=True)
    email: Mapped[str] = mapped_column(String(120), unique=True, nullable=False, index=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    first_name: Mapped[Optional[str]] = mapped_column(String(50))
    last_name: Mapped[Optional[str]] = mapped_column(String(50))
    phone: Mapped[Optional[str]] = mapped_column(String(20))
    avatar_url: Mapped[Optional[str]] = mapped_column(String(255))
    role: Mapped[UserRole] = mapped_column(SQLEnum(UserRole), default=UserRole.USER, nullable=False)
    status: Mapped[UserStatus] = mapped_column(
        SQLEnum(UserStatus), default=UserStatus.ACTIVE, nullable=False
    )
    is_verified: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime, default=utcnow, onupdate=utcnow, nullable=False
    )
    last_login_at: Mapped[Optional[datetime]] = mapped_column(DateTime)

    def __init__(self, username: str, email: str, password: str | None = None, method: str | None = None, **kwargs):
        self.username = username
        self.email = email
        if password is not None:
            self.setPassword(password, method)
        for key, value in kwargs.items():
            if hasattr(self, key):
                setattr(self, key, value)

    def setPassword(self, password: str, method: str | None = None) -> None:
        self.password_hash = (
            generate_password_hash(password, method=method) if method else generate_password_hash(password)
        )

    def checkPassword(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


def create_database(server_url: str | None, sqlite_path: str | None = None) -> str:
    """A fresh, empty database with the Python model's tables; returns its SQLAlchemy URL.

    server_url: `postgresql+psycopg://postgres@127.0.0.1:5432/test` or
    `mysql+pymysql://root@127.0.0.1:3306/test` (a new database is created beside `test`), or
    None with sqlite_path for a SQLite file.
    """
    if server_url is None:
        url = f"sqlite:///{sqlite_path}"
    else:
        name = f"pyera_{uuid.uuid4().hex[:12]}"
        admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
        url = server_url.rsplit("/", 1)[0] + "/" + name
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    return url


def drop_database(server_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        if server_url.startswith("postgresql"):
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        else:
            c.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


def session(url: str) -> Session:
    return Session(create_engine(url))
