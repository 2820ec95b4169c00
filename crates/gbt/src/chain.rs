//! Which network the node runs, and what follows from it: the payout
//! address must belong to it, and Core keeps its cookie and default RPC port
//! per network.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, Network, ScriptBuf};

/// Why a payout address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    #[error("'{addr}' is not a Bitcoin address: {why}")]
    Syntax { addr: String, why: String },
    #[error("'{addr}' is not an address for {network} (the node's chain); a coin sent there would be lost")]
    WrongNetwork { addr: String, network: String },
}

/// The network of a `getblockchaininfo` `chain` name (`main`, `test`,
/// `testnet4`, `signet`, `regtest`).
pub fn network_of_chain(chain: &str) -> Option<Network> {
    Network::from_core_arg(chain).ok()
}

/// The scriptPubKey paying `addr` (base58, bech32 or bech32m), if `addr`
/// belongs to `network`.
///
/// # Errors
/// See [`AddressError`].
pub fn payout_script(addr: &str, network: Network) -> Result<ScriptBuf, AddressError> {
    let unchecked = Address::<NetworkUnchecked>::from_str(addr.trim())
        .map_err(|e| AddressError::Syntax { addr: addr.to_string(), why: e.to_string() })?;
    let checked = unchecked
        .require_network(network)
        .map_err(|_| AddressError::WrongNetwork { addr: addr.to_string(), network: network.to_core_arg().into() })?;
    Ok(checked.script_pubkey())
}

/// Syntax only, before the node's network is known.
///
/// # Errors
/// [`AddressError::Syntax`].
pub fn check_address_syntax(addr: &str) -> Result<(), AddressError> {
    Address::<NetworkUnchecked>::from_str(addr.trim())
        .map(|_| ())
        .map_err(|e| AddressError::Syntax { addr: addr.to_string(), why: e.to_string() })
}

/// Core's default RPC port per network.
pub fn default_rpc_port(network: Network) -> u16 {
    match network {
        Network::Testnet => 18332,
        Network::Testnet4 => 48332,
        Network::Signet => 38332,
        Network::Regtest => 18443,
        _ => 8332,
    }
}

/// The network whose default RPC port is `port`, if it is one.
pub fn network_of_port(port: u16) -> Option<Network> {
    [Network::Bitcoin, Network::Testnet, Network::Testnet4, Network::Signet, Network::Regtest]
        .into_iter()
        .find(|n| default_rpc_port(*n) == port)
}

/// Where Core writes its cookie: `<datadir>/.cookie` on mainnet,
/// `<datadir>/<chain dir>/.cookie` elsewhere.
pub fn cookie_path(datadir: &Path, network: Network) -> PathBuf {
    datadir.join(chain_dir(network).unwrap_or("")).join(".cookie")
}

/// The subdirectory Core keeps a network's data in (`None`: mainnet, which
/// uses the data directory itself).
pub fn chain_dir(network: Network) -> Option<&'static str> {
    match network {
        Network::Testnet => Some("testnet3"),
        Network::Testnet4 => Some("testnet4"),
        Network::Signet => Some("signet"),
        Network::Regtest => Some("regtest"),
        _ => None,
    }
}

/// Core's default data directory (`~/.bitcoin` on Unix).
pub fn default_datadir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".bitcoin"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_belong_to_their_network() {
        let main = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";
        assert!(payout_script(main, Network::Bitcoin).is_ok());
        assert!(matches!(payout_script(main, Network::Regtest), Err(AddressError::WrongNetwork { .. })));
        // A base58 testnet address is valid on regtest (same prefixes); bech32 is not.
        assert!(payout_script("mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn", Network::Regtest).is_ok());
        assert!(payout_script("tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", Network::Regtest).is_err());
        assert!(payout_script("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", Network::Regtest).is_ok());
        assert!(matches!(payout_script("hello", Network::Bitcoin), Err(AddressError::Syntax { .. })));
        assert_eq!(network_of_chain("test"), Some(Network::Testnet));
        assert_eq!(network_of_chain("testnet4"), Some(Network::Testnet4));
        assert_eq!(network_of_port(18443), Some(Network::Regtest));
        assert_eq!(cookie_path(Path::new("/d"), Network::Bitcoin), PathBuf::from("/d/.cookie"));
        assert_eq!(cookie_path(Path::new("/d"), Network::Regtest), PathBuf::from("/d/regtest/.cookie"));
    }
}
