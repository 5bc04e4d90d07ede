package dev.spate.compat;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.TestInstance;

/**
 * One broker per test class. When the binary is missing, every test is reported as skipped (the
 * assumption is checked per test, so Surefire counts them as skipped rather than "0 tests run").
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class BrokerTestBase {
  protected SpateBroker broker;

  /** Name used for the temp dir and the log file target/broker-logs/NAME-N.log. */
  protected abstract String brokerName();

  /** --set key=value settings. */
  protected String[] brokerSettings() {
    return new String[] {"auto.create.topics.enable=false"};
  }

  /** Called once after the broker accepts connections. */
  protected void afterBrokerStart() throws Exception {}

  /** Called before the broker is stopped. */
  protected void beforeBrokerStop() throws Exception {}

  @BeforeAll
  final void startBroker() throws Exception {
    if (!SpateBroker.binaryPresent()) {
      return;
    }
    broker = SpateBroker.start(brokerName(), brokerSettings());
    afterBrokerStart();
  }

  @BeforeEach
  final void requireBroker() {
    SpateBroker.binaryOrSkip();
  }

  @AfterAll
  final void stopBroker() throws Exception {
    try {
      beforeBrokerStop();
    } finally {
      if (broker != null) {
        broker.close();
      }
    }
  }
}
