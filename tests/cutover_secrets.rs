//! Passwords stay out of the servers' logs: a subscription's connection string carries the
//! publisher's password, and a failed CREATE SUBSCRIPTION on a server that logs every
//! statement (and the statement of every error) leaves no trace of it; nor does the
//! controller's error.

mod support;

use pgflip::controller::links;
use pgflip::controller::names::LinkNames;
use support::{free_port, Cluster, ClusterOptions};
use tokio_postgres::NoTls;

#[test]
fn a_failed_create_subscription_leaves_no_password_in_the_server_log() {
    let options = ClusterOptions::default().conf("log_statement = 'all'").conf("log_min_error_statement = error");
    let green = Cluster::start_with(options);
    let password = "s3cret-publisher-pw";
    // Nobody listens there: CREATE SUBSCRIPTION fails connecting to the publisher.
    let publisher = format!("postgres://postgres:{password}@127.0.0.1:{}/postgres", free_port());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let error = runtime.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(&green.conninfo("postgres", "postgres"), NoTls).await.expect("connect");
        tokio::spawn(connection);
        client.batch_execute("SELECT 'the session logs statements'").await.expect("a logged statement");
        links::subscribe(&client, LinkNames::derive("postgres").forward(), &publisher)
            .await
            .expect_err("no publisher")
            .to_string()
    });
    assert!(error.contains("subscribing green to blue"), "{error}");
    assert!(!error.contains(password), "the error shows the password: {error}");
    let log = std::fs::read_to_string(green.dir().join("server.log")).expect("server log");
    assert!(log.contains("the session logs statements"), "the server logs statements:\n{log}");
    assert!(log.contains("could not connect to the publisher"), "CREATE SUBSCRIPTION failed:\n{log}");
    assert!(!log.contains(password), "the password is in the server log:\n{log}");
}
