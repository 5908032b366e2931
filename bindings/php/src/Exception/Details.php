<?php

declare(strict_types=1);

namespace Promshm\Exception;

/** The fields and constructor every promshm exception shares. */
trait Details
{
    private string $resultMessage;
    private string $detail;

    /**
     * @param string $resultMessage the C result's text (or the whole message)
     * @param int    $code          the promshm_result code
     * @param string $detail        the library's detail ("" if none)
     */
    public function __construct(string $resultMessage, int $code, string $detail = '', ?\Throwable $previous = null)
    {
        $this->resultMessage = $resultMessage;
        $this->detail = $detail;
        parent::__construct($detail === '' ? $resultMessage : "{$resultMessage}: {$detail}", $code, $previous);
    }

    public function getResultMessage(): string
    {
        return $this->resultMessage;
    }

    public function getDetail(): string
    {
        return $this->detail;
    }
}
