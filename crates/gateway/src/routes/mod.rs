pub mod audit;
pub mod auth;
pub mod mfa;
pub mod oidc;
pub mod oidc_clients;
pub mod ops;
pub mod pages;
pub mod users;
