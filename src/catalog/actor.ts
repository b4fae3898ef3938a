import { userInfo } from 'node:os';

/** Who is acting: the OS user, and the CI job when the usual CI variables say there is one. */
export function currentActor(env: NodeJS.ProcessEnv = process.env): { actor: string; ciJob: string | null } {
  let actor: string;
  try {
    actor = userInfo().username;
  } catch {
    actor = env.USER ?? 'unknown';
  }
  const ciJob =
    (env.GITHUB_RUN_ID && `github:${env.GITHUB_REPOSITORY ?? ''}#${env.GITHUB_RUN_ID}`) ||
    (env.CI_JOB_ID && `gitlab:${env.CI_PROJECT_PATH ?? ''}#${env.CI_JOB_ID}`) ||
    (env.BUILDKITE_JOB_ID && `buildkite:${env.BUILDKITE_JOB_ID}`) ||
    (env.CIRCLE_BUILD_NUM && `circleci:${env.CIRCLE_BUILD_NUM}`) ||
    (env.BUILD_TAG && `jenkins:${env.BUILD_TAG}`) ||
    (env.CI === 'true' || env.CI === '1' ? 'ci' : null);
  return { actor, ciJob: ciJob || null };
}
