//! Operating parameters (shared/exchanges/ASSETS.md). They start from these settings and, once
//! the parameters table exists, are reloaded from it without a restart.

use super::group::settings_group;
use super::setting::{AssetList, Int, LogLevel, Ratio};

settings_group! {
    /// Runtime parameters: prewarmed assets, governor limits, pools, timeouts.
    pub struct Params, args ParamsArgs, heading "Parameters" {
        /// Coinbase assets subscribed at start-up (quoted in USD).
        coinbase_prewarm_assets: AssetList = AssetList::of(&[
            "btc", "eth", "sol", "doge", "xrp", "link", "dot", "ltc", "avax", "uni", "pepe", "xlm", "etc",
            "icp", "render", "bonk", "bch", "jasmy", "axs", "chz", "storj", "zec", "dash", "cgld", "near",
        ]), env = "COINBASE_PREWARM_ASSETS";
        /// Gemini assets subscribed at start-up (quoted in USD).
        gemini_prewarm_assets: AssetList = AssetList::of(&[
            "aave", "amp", "arb", "atom", "bat", "chillguy", "crv", "ctx", "cube", "drift", "fil", "grt", "hnt",
            "hype", "jto", "mon", "popcat", "pump", "qnt", "rndr", "shib", "skl", "sky", "uma", "wlfi",
        ]), env = "GEMINI_PREWARM_ASSETS";
        /// Kraken assets subscribed at start-up (quoted in USD).
        kraken_prewarm_assets: AssetList = AssetList::of(&[
            "nano", "sc", "lsk", "kava", "bico", "rari", "ocean", "cfg", "cqt", "algo", "fet", "flow", "xtz",
            "qtum", "icx", "astr", "enj", "egld", "coti", "mina", "glmr", "movr", "ksm", "teer", "cro",
        ]), env = "KRAKEN_PREWARM_ASSETS";
        /// Gate.io assets subscribed at start-up (quoted in USDT).
        gateio_prewarm_assets: AssetList = AssetList::of(&[
            "bnb", "trx", "apt", "sei", "inj", "op", "sui", "vet", "hbar", "sand", "mana", "s", "chr", "flr",
            "theta", "celr", "reef", "dent", "hot", "pond", "iotx", "alice", "super", "flux", "one",
        ]), env = "GATEIO_PREWARM_ASSETS";
        /// Crypto.com assets subscribed at start-up (quoted in USDT).
        cryptocom_prewarm_assets: AssetList = AssetList::of(&[
            "ton", "wld", "ape", "blur", "imx", "ens", "ldo", "snx", "comp", "1inch", "sushi", "gala", "magic",
            "ordi", "pixel", "rune", "arkm", "dym", "gmx", "cro", "tao", "agld", "ar", "audio", "pol",
        ]), env = "CRYPTOCOM_PREWARM_ASSETS";
        /// OKX assets subscribed at start-up (quoted in USDT).
        okx_prewarm_assets: AssetList = AssetList::of(&[
            "tia", "jup", "strk", "pyth", "w", "zro", "pendle", "ondo", "wif", "floki", "not", "aevo", "ena",
            "ethfi", "turbo", "neiro", "dogs", "hmstr", "eigen", "bome", "kaito", "grass", "banana", "ace", "tnsr",
        ]), env = "OKX_PREWARM_ASSETS";
        /// TCP connections served at once, cluster-wide; each node takes its share.
        adaptive_max_concurrent: Int<1, 10_000_000> = Int::new(6000), env = "ADAPTIVE_MAX_CONCURRENT";
        /// The connection governor throttles when the success ratio falls below this.
        adaptive_success_threshold: Ratio = Ratio(0.50), env = "ADAPTIVE_SUCCESS_THRESHOLD";
        /// UDP requests in flight per node on the LPO port.
        udp_max_concurrent_lpo: Int<1, 10_000_000> = Int::new(3000), env = "UDP_MAX_CONCURRENT_LPO";
        /// UDP requests in flight per node on the LRS port.
        udp_max_concurrent_lrs: Int<1, 10_000_000> = Int::new(3000), env = "UDP_MAX_CONCURRENT_LRS";
        /// PostgreSQL connections open at most.
        db_max_open_conns: Int<1, 10_000> = Int::new(150), env = "DB_MAX_OPEN_CONNS";
        /// PostgreSQL connections kept idle at most.
        db_max_idle_conns: Int<0, 10_000> = Int::new(75), env = "DB_MAX_IDLE_CONNS";
        /// Valkey connections at most.
        cache_pool_size: Int<1, 10_000> = Int::new(300), env = "CACHE_POOL_SIZE";
        /// Valkey connections kept idle at least.
        cache_min_idle_conns: Int<0, 10_000> = Int::new(60), env = "CACHE_MIN_IDLE_CONNS";
        /// Valkey connect timeout (fail fast).
        cache_dial_timeout_ms: Int<1, 60_000> = Int::new(500), env = "CACHE_DIAL_TIMEOUT_MS";
        /// Valkey read timeout.
        cache_read_timeout_ms: Int<1, 60_000> = Int::new(500), env = "CACHE_READ_TIMEOUT_MS";
        /// Valkey write timeout.
        cache_write_timeout_ms: Int<1, 60_000> = Int::new(500), env = "CACHE_WRITE_TIMEOUT_MS";
        /// Usage records per SQS SendMessageBatch (SQS allows at most 10).
        sqs_batch_size: Int<1, 10> = Int::new(10), env = "SQS_BATCH_SIZE";
        /// Longest wait before a partial SQS batch is sent.
        sqs_flush_ms: Int<1, 60_000> = Int::new(100), env = "SQS_FLUSH_MS";
        /// Usage records buffered in memory for SQS before spilling to the journal.
        sqs_buffer_size: Int<10, 10_000_000> = Int::new(50_000), env = "SQS_BUFFER_SIZE";
        /// SQS request timeout.
        sqs_timeout_ms: Int<1, 60_000> = Int::new(3000), env = "SQS_TIMEOUT_MS";
        /// An idle keep-alive connection is closed after this long.
        http_idle_timeout_seconds: Int<1, 86_400> = Int::new(300), env = "HTTP_IDLE_TIMEOUT_SECONDS";
        /// A request must arrive complete within this long (slowloris guard, 408).
        http_read_timeout_seconds: Int<1, 3600> = Int::new(5), env = "HTTP_READ_TIMEOUT_SECONDS";
        /// A response must be written within this long, or the connection is closed.
        http_write_timeout_seconds: Int<1, 3600> = Int::new(5), env = "HTTP_WRITE_TIMEOUT_SECONDS";
        /// How long a price counts as fresh; older prices are served with "stale":true.
        cache_ttl_seconds: Int<1, 86_400> = Int::new(9), env = "CACHE_TTL_SECONDS";
        /// Period of the Kraken REST batch poll.
        kraken_prewarm_interval_minutes: Int<1, 1440> = Int::new(3), env = "KRAKEN_PREWARM_INTERVAL_MINUTES";
        /// Stagger of the Kraken REST poll across nodes.
        kraken_prewarm_offset_seconds: Int<0, 3600> = Int::new(15), env = "KRAKEN_PREWARM_OFFSET_SECONDS";
        /// Log level applied in performance mode.
        log_level: LogLevel = LogLevel::Error, env = "LOG_LEVEL";
    }
}
