package dev.spate.compat;

import java.util.concurrent.atomic.AtomicInteger;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.TestPlan;

/**
 * Prints one plain closing line, "compat-java: N passed, N failed, N skipped", so a quiet
 * `mvn -q test` run still says what it ran. A failed container (e.g. the broker did not start in
 * a class's @BeforeAll) counts as one failure.
 */
public class SummaryListener implements TestExecutionListener {
  private final AtomicInteger passed = new AtomicInteger();
  private final AtomicInteger failed = new AtomicInteger();
  private final AtomicInteger skipped = new AtomicInteger();

  @Override
  public void executionSkipped(TestIdentifier id, String reason) {
    if (id.isTest()) {
      skipped.incrementAndGet();
    }
  }

  @Override
  public void executionFinished(TestIdentifier id, TestExecutionResult result) {
    switch (result.getStatus()) {
      case SUCCESSFUL -> {
        if (id.isTest()) {
          passed.incrementAndGet();
        }
      }
      case ABORTED -> {
        if (id.isTest()) {
          skipped.incrementAndGet();
        }
      }
      case FAILED -> failed.incrementAndGet();
    }
  }

  @Override
  public void testPlanExecutionFinished(TestPlan plan) {
    System.out.println(
        "compat-java: " + passed + " passed, " + failed + " failed, " + skipped + " skipped");
    System.out.flush();
  }
}
