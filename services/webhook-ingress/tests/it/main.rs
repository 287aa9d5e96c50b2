//! Integration tests of webhook-ingress: the real service in-process on port 0,
//! against its own PostgreSQL database and RabbitMQ namespace.

mod adversarial;
mod config;
mod health;
mod helpers;
mod hostile;
mod kyc;
mod server;
mod shutdown;
mod token;
mod webhooks;
