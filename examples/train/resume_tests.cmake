# lowbit-train's resume contract (included from examples/CMakeLists.txt): --checkpoint-every / --checkpoint-dir
# write the whole run state, --resume continues it bit-identically for fp, bc, sr, sqwa and sat, a run killed
# with SIGKILL between checkpoints or while one is written leaves only loadable checkpoints and still ends
# bit-identically, and checkpoints that do not fit are refused by name. examples/train/resume_test.sh does the
# work and checks every exit code and message itself; its own exit code is the test's result.
if(LOWBIT_BUILD_TESTS)
    find_program(LOWBIT_BASH bash)
    if(LOWBIT_BASH)
        set(_resume_script ${CMAKE_CURRENT_SOURCE_DIR}/train/resume_test.sh)
        set(_resume_dir ${CMAKE_CURRENT_BINARY_DIR}/resume_tests)
        set(_resume_data ${_lowbit_cli_data})  # examples/CMakeLists.txt
        set(_resume_fixture ${_lowbit_cli_fixture})
        # 300 images in batches of 50: 6 steps per epoch, a checkpoint every 2 steps.
        set(_resume_args --train-limit 300 --batch 50 --data ${_resume_data})
        function(_lowbit_resume_test name mode)
            add_test(NAME lowbit-train.resume.${name}
                     COMMAND ${LOWBIT_BASH} ${_resume_script} ${mode} $<TARGET_FILE:lowbit-train>
                             ${_resume_dir}/${name} ${ARGN})
            # No PASS_REGULAR_EXPRESSION: it would make ctest ignore the exit code, which is the script's verdict.
            set_tests_properties(lowbit-train.resume.${name} PROPERTIES TIMEOUT 900)
            if(_resume_fixture)
                set_tests_properties(lowbit-train.resume.${name} PROPERTIES FIXTURES_REQUIRED ${_resume_fixture})
            endif()
        endfunction()
        # Resumed from a checkpoint inside an epoch (2: step 4 of 6) and at an epoch's end (3: step 6).
        _lowbit_resume_test(fp roundtrip "2 3" --method fp --hidden 16 --epochs 2 ${_resume_args})
        _lowbit_resume_test(bc roundtrip "2" --method bc --bits 1 --hidden 16 --epochs 2 ${_resume_args})
        _lowbit_resume_test(sr roundtrip "3" --method sr --bits 2 --hidden 16 --epochs 2 ${_resume_args})
        _lowbit_resume_test(sat roundtrip "2" --method sat --bits 4 --act-bits 4 --hidden 16 --epochs 2
                            --optimizer sgd --schedule cosine --lr 0.05 ${_resume_args})
        # SQWA: float step 1 (checkpoints 1-3), retraining with 2 captures (4-6), fine-tuning (7-9); resumed in
        # each stage.
        _lowbit_resume_test(sqwa roundtrip "2 5 8" --method sqwa --bits 2 --hidden 16 --fp-epochs 1 --captures 2
                            --cycle-epochs 0.5 --finetune-epochs 1 ${_resume_args})
        _lowbit_resume_test(sigkill kill --method sr --bits 2 --hidden 16 --epochs 2 ${_resume_args})
        _lowbit_resume_test(refuse refuse --bits 2 --epochs 1 ${_resume_args})
    endif()
endif()
