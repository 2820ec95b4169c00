//! Tests of the testkit itself against a real regtest bitcoind.

mod real_node;
