//! An e2e bench client: see [`dingtalk_tests::e2e_client`].
fn main() {
    dingtalk_tests::e2e_client::tokio_redis(&dingtalk_tests::e2e_client::Args::parse());
}
