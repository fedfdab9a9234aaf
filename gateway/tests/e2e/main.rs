//! End-to-end tests: the real `pingway` binary against real HTTP backends.

mod common;

mod acl;
mod auth_fixtures;
mod basic_auth;
mod consumers;
mod jwt;
mod key_auth;
