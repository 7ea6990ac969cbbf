/** Running an exported PyTorch program under torchrun in tests (Debian's python3-torch). */
import { spawnSync } from 'node:child_process';

/**
 * What --standalone means (one node, a c10d rendezvous on localhost), on a free port instead of its fixed 29400: a
 * launcher whose rank was killed by the previous test, or another torchrun on the machine, may still hold 29400.
 */
export function standaloneOnFreePort(): string[] {
  const probe = spawnSync(
    process.execPath,
    ['-e', "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"],
    { encoding: 'utf8' },
  );
  const port = Number(probe.stdout.trim());
  if (!Number.isInteger(port) || port <= 0) throw new Error(`no free port: ${probe.stderr}`);
  return ['--nnodes=1', '--rdzv_backend=c10d', `--rdzv_endpoint=localhost:${port}`, `--rdzv_id=flaneur-test-${port}`];
}

/**
 * Python's arguments for `torchrun ARGS` (`python -m torch.distributed.run`): --standalone on a free port, and on
 * torch 1.x (Debian's) the launcher's output redirected and teed, without which its agent fails to start the workers.
 */
export function torchrunArgs(torchVersion: string | null, args: readonly string[]): string[] {
  const debianFix = torchVersion?.startsWith('1.') ? ['--redirects', '1', '--tee', '1'] : [];
  return [
    '-m',
    'torch.distributed.run',
    ...debianFix,
    ...args.flatMap((a) => (a === '--standalone' ? standaloneOnFreePort() : [a])),
  ];
}
