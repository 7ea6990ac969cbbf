/**
 * Argument shapes every capability's commands share (no arguments, a job id, a path the user gave).
 * Part of the engine's contract (contract.ts is the index that exports every name).
 */
import { z } from 'zod';

export const Empty = z.object({}).strict();

export const JobId = z.object({ id: z.int().positive() }).strict();

export const UserPath = z.string().min(1, 'must not be empty').max(4096);
